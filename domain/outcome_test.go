package domain_test

import (
	"errors"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		typ, data string
		want      domain.TriggerOutcome
		rejected  *domain.RejectedError
		fails     bool
	}{
		{typ: domain.TypeOrderAdvanced, data: `{}`, want: domain.OutcomeAdvanced},
		{typ: domain.TypeOrderCompleted, data: `{}`, want: domain.OutcomeCompleted},
		{typ: domain.TypeTriggerRejected, data: `{"reason":"order_on_hold","expected":"wash_done"}`,
			rejected: &domain.RejectedError{Reason: domain.RejectOnHold, Expected: "wash_done"}},
		{typ: domain.TypeTriggerRejected, data: `{"reason":`, fails: true},
		{typ: domain.TypeOrderHeld, data: `{}`, fails: true},
	} {
		got, err := domain.OutcomeOf(tc.typ, []byte(tc.data))
		var rejected *domain.RejectedError
		switch {
		case tc.rejected != nil:
			if !errors.As(err, &rejected) || *rejected != *tc.rejected {
				t.Errorf("%s %s: %q, %v; want %v", tc.typ, tc.data, got, err, tc.rejected)
			}
		case tc.fails:
			if err == nil || errors.As(err, &rejected) {
				t.Errorf("%s %s: %q, %v; want an error", tc.typ, tc.data, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s: %q, %v; want %s", tc.typ, got, err, tc.want)
		}
	}
}
