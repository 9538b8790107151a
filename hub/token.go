package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// This file holds everything that happens to a connection's credential
// while the socket is open: the expiry warning, the expiry itself, and the
// refresh that replaces the identity. All the timing lives in armLocked and
// tokenTick, so a shared timer wheel can replace the per-connection timer
// in one place.

// authorized applies Options.Authorize; nil allows every valid channel.
func (h *Hub) authorized(id Identity, channel string) bool {
	return h.opts.Authorize == nil || h.opts.Authorize(id, channel)
}

// startTokenClock runs once, right after the welcome frame is queued: a
// token that is already within ExpiryWarning is warned about at once, so
// the warning is the frame after welcome.
func (c *conn) startTokenClock() {
	c.mu.Lock()
	ok, slow := c.tokenEventLocked(time.Now())
	c.mu.Unlock()
	c.afterPush(ok, slow)
}

// stopTokenClock stops the timer once the connection is gone.
func (c *conn) stopTokenClock() {
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
}

// tokenTick runs on the timer's goroutine. It may fire for an identity a
// refresh has since replaced; tokenEventLocked judges by the current one,
// so a stale tick only re-arms the timer.
func (c *conn) tokenTick() {
	c.mu.Lock()
	ok, slow := c.tokenEventLocked(time.Now())
	closing := c.closeReq.code != 0
	c.mu.Unlock()
	c.afterPush(ok, slow)
	if closing {
		c.kick()
	}
}

// tokenEventLocked does what is due at now for the current identity (close
// it when expired, warn once when within ExpiryWarning) and arms the timer
// for the next event.
func (c *conn) tokenEventLocked(now time.Time) (ok, slow bool) {
	exp := c.ident.ExpiresAt
	if exp.IsZero() || c.closeReq.code != 0 || c.readerDone {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		return false, false
	}
	if !now.Before(exp) {
		c.closeLocked(closeTokenExpired)
		return false, false
	}
	warning := c.hub.opts.ExpiryWarning
	if warning > 0 && !c.warned && exp.Sub(now) <= warning {
		c.warned = true
		ok, slow = c.pushLocked(encodeTokenExpiring(exp, now))
	}
	next := exp
	if warning > 0 && !c.warned {
		next = exp.Add(-warning)
	}
	c.armLocked(next.Sub(now))
	return ok, slow
}

// armLocked sets the connection's one timer to fire after d.
func (c *conn) armLocked(d time.Duration) {
	if c.expiry == nil {
		c.expiry = time.AfterFunc(d, c.tokenTick)
		return
	}
	c.expiry.Reset(d)
}

func encodeTokenExpiring(exp, now time.Time) []byte {
	left := int64(exp.Sub(now) / time.Second)
	return encodeReply(reply{Type: "token_expiring", ExpiresAt: exp.UTC().Format(time.RFC3339), ExpiresIn: &left})
}

// refresh answers a refresh message on the reader goroutine: the new token
// is verified, then replaces the identity as a whole. Channels the new
// identity may not see are removed from the index before it takes effect,
// so no event of theirs is queued under it; each is announced after the
// refreshed reply. The token is never logged.
func (c *conn) refresh(token *string, id json.RawMessage) {
	h := c.hub
	if h.opts.Reauthenticate == nil {
		c.reply(errorReply(id, codeRefreshUnsupported))
		return
	}
	if token == nil || *token == "" {
		c.reply(errorReply(id, codeInvalidToken))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.ReauthenticateTimeout)
	ident, err := h.opts.Reauthenticate(ctx, *token)
	cancel()
	if err != nil {
		c.logf(slog.LevelInfo, "hub: refresh refused", slog.Any("err", err))
		c.reply(errorReply(id, codeInvalidToken))
		return
	}
	if ident.Subject != c.subject {
		c.logf(slog.LevelWarn, "hub: refresh for another subject refused", slog.String("token_sub", ident.Subject))
		c.reply(errorReply(id, codeSubjectMismatch))
		return
	}
	var dropped []string
	for i := 0; i < len(c.subs); {
		ch := c.subs[i].channel
		if h.authorized(ident, ch) {
			i++
			continue
		}
		h.unsubscribe(c, ch) // removes c.subs[i]
		dropped = append(dropped, ch)
	}

	now := time.Now()
	r := reply{Type: "refreshed", ID: id}
	if !ident.ExpiresAt.IsZero() {
		r.ExpiresAt = ident.ExpiresAt.UTC().Format(time.RFC3339)
	}
	c.mu.Lock()
	c.ident, c.warned = ident, false
	ok, slow := c.pushLocked(encodeReply(r))
	for _, ch := range dropped {
		if ok {
			ok, slow = c.pushLocked(encodeReply(reply{Type: "unsubscribed", Channel: ch, Code: codeForbiddenChannel}))
		}
	}
	// Moves the timer to the new expiry and re-arms the warning; an
	// identity already expired closes with 3000 here.
	warnOK, warnSlow := c.tokenEventLocked(now)
	c.mu.Unlock()
	c.afterPush(ok || warnOK, slow || warnSlow)
	c.logf(slog.LevelDebug, "hub: token refreshed", slog.String("role", ident.Role), slog.Int("dropped_channels", len(dropped)))
}
