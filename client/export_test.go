package client

import "time"

// SetAttempt sets how long c's requests wait for an answer (5 s
// otherwise), for the tests of the client_test package.
func SetAttempt(c *Client, d time.Duration) { c.attempt = d }

// SetSending has PublishTrigger call sending(n) before its nth send of a
// trigger.
func SetSending(c *Client, sending func(n int)) { c.sending = sending }
