package rest_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/bookhub/bookhub/auth"
)

// TestSnapshotPositions: reads report where the event stream stood, so a
// client can subscribe with since = that position and miss nothing.
func TestSnapshotPositions(t *testing.T) {
	e := newEnv(t, nil)
	editor := e.token(t, auth.RoleEditor)
	a := e.createBook(t, `{"title":"a","author":"b"}`)
	e.createBook(t, `{"title":"c","author":"d"}`)
	path := "/api/v1/books/" + jsonInt(a.ID)
	if r := e.do(t, request{method: "PATCH", path: path, token: editor, headers: map[string]string{"Content-Type": "application/merge-patch+json"},
		body: `{"stock":4}`}); r.status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", r.status, r.body)
	}
	epoch := e.store.Epoch()
	if len(epoch) != 16 {
		t.Fatalf("epoch %q is not 16 hex digits", epoch)
	}

	t.Run("ListReportsBooksPosition", func(t *testing.T) {
		r := e.do(t, request{method: "GET", path: "/api/v1/books"})
		l := decodeStrictList(t, r.body)
		if l.Position.Channel != "books" || l.Position.Offset != 3 || l.Position.Epoch != epoch {
			t.Errorf("position %+v, want books at 3 in epoch %s", l.Position, epoch)
		}
		if r.header.Get("Bookhub-Offset") != "3" || r.header.Get("Bookhub-Epoch") != epoch {
			t.Errorf("headers offset %q epoch %q", r.header.Get("Bookhub-Offset"), r.header.Get("Bookhub-Epoch"))
		}
		changes := e.published()
		if len(changes) != 3 || changes[2].Offset != 3 || changes[2].BookOffset != 2 {
			t.Errorf("changes %+v: want 3, the last at books offset 3 and book offset 2", changes)
		}
	})
	t.Run("BookReportsItsChannelPosition", func(t *testing.T) {
		r := e.do(t, request{method: "GET", path: path})
		if r.header.Get("Bookhub-Offset") != "2" || r.header.Get("Bookhub-Epoch") != epoch {
			t.Errorf("headers offset %q epoch %q, want the version 2", r.header.Get("Bookhub-Offset"), r.header.Get("Bookhub-Epoch"))
		}
	})
	t.Run("DeleteIsOnePastTheLastVersion", func(t *testing.T) {
		r := e.do(t, request{method: "DELETE", path: path, token: e.token(t, auth.RoleAdmin)})
		if r.status != http.StatusNoContent {
			t.Fatalf("DELETE = %d", r.status)
		}
		changes := e.published()
		last := changes[len(changes)-1]
		if last.Offset != 4 || last.BookOffset != 3 || strconv.FormatInt(last.Book.ID, 10) != jsonInt(a.ID) {
			t.Errorf("delete change at %d/%d for book %d, want 4/3", last.Offset, last.BookOffset, last.Book.ID)
		}
	})
}
