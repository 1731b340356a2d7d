package client

import (
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

// The client names the dead-letter subject without importing the server.
func TestDeadLetterSubject(t *testing.T) {
	if got, want := deadLetterSubject("t", "o-1", "picked_up"), eventstore.DeadLetterSubjectFor("t", "o-1", "picked_up"); got != want {
		t.Fatalf("client %q, server %q", got, want)
	}
}
