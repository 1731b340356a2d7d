package client

import (
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

// The client names the dead-letter subject without importing the server.
func TestDeadLetterSubject(t *testing.T) {
	if deadLetterSubject != eventstore.DeadLetterSubject {
		t.Fatalf("client %q, server %q", deadLetterSubject, eventstore.DeadLetterSubject)
	}
}
