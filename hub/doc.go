// Package hub pushes already-encoded events to WebSocket subscribers.
//
// The hub knows nothing about what it carries: callers hand Publish a JSON
// object and a list of channel names, and the hub wraps the object in an
// envelope and fans it out to the sockets subscribed to each channel.
// Authentication, channel validation and channel authorization are
// injected through Options, so the same hub serves any channel scheme and
// any token format.
//
// Every connection owns exactly one reader goroutine, a bounded send queue,
// and at most one writer goroutine, which runs only while the queue holds
// frames (or a close or ping is due): an idle socket costs one parked
// goroutine and a few KiB (loadtest/RESULTS.md has the measured figure).
// Publish only appends to the queues and never waits on a socket: a client
// whose queue overflows is disconnected with 1008 "slow consumer" so that
// it cannot hold back anyone else. The writer sends every frame it finds
// queued in one write system call, and one hub-wide clock schedules the
// pings, so neither a timer nor a goroutine is kept per connection for them.
//
// # Identity on open sockets
//
// A connection speaks for the Identity its token established, and keeps
// honouring it while open:
//
//   - Options.Authorize decides which channels an identity may subscribe to.
//     A ?subscribe= channel it refuses fails the handshake with 403
//     forbidden-channel; a subscribe message is answered
//     {"type":"error","code":"forbidden_channel",...} and the connection
//     stays.
//   - Identity.Variant selects the payload a connection receives when a
//     publication (or a history entry) carries Variants: the one of its
//     variant, else Data, never another variant's.
//   - Options.ExpiryWarning before Identity.ExpiresAt the server sends once
//     {"type":"token_expiring","expires_at":"<RFC3339>","expires_in":<whole seconds>};
//     a token with less left at connect gets it right after welcome.
//   - The client may then send {"type":"refresh","token":"<access token>","id":...}
//     (the whole message within ReadLimit, 4096 bytes by default, which
//     holds a JWT of well over 3 KB). On success the answer is
//     {"type":"refreshed","id":...,"expires_at":"<RFC3339>"} (expires_at
//     absent for a token that never expires): the identity (role, variant,
//     session, generation, expiry) is replaced, the expiry moves and the
//     warning re-arms, and every subscription is checked against Authorize
//     again; a channel no longer allowed is dropped with
//     {"type":"unsubscribed","channel":"<ch>","code":"forbidden_channel"}.
//     Frames queued before the refresh go out as they were; frames published
//     after it use the new variant. Refusals, each leaving the connection
//     and its current token as they were: error code refresh_unsupported
//     (no Options.Reauthenticate), invalid_token (missing, or refused by
//     Reauthenticate), subject_mismatch (a token of another subject).
//   - At Identity.ExpiresAt the socket closes with 3000 "token expired".
//   - Hub.Revoke closes the sockets whose identity matches with 3001 "token
//     revoked": the client must sign in again rather than reconnect with
//     the same token.
//
// # Client messages and error codes
//
// Clients send subscribe, unsubscribe, ping and refresh (see above).
// Anything else is answered {"type":"error","code":"unknown_type"}. The
// error codes, after each of which the connection stays usable, are
// bad_json, unknown_type, missing_channel, unknown_channel,
// forbidden_channel, not_subscribed, too_many_subscriptions,
// binary_unsupported, bad_since, history_unavailable, bad_slow,
// refresh_unsupported, invalid_token and subject_mismatch.
//
// # Close codes
//
//   - 1001 "server shutting down": Shutdown; reconnect elsewhere and resume.
//   - 1007: a text frame that is not UTF-8.
//   - 1008 "slow consumer: send queue full": resume from the last offset.
//   - 1009: a client message over ReadLimit.
//   - 3000 "token expired": reconnect with a fresh token.
//   - 3001 "token revoked": the credential was withdrawn; sign in again.
package hub
