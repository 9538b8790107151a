package rest_test

import (
	"fmt"
	"testing"

	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// TestStoreErrorProblems checks how classify renders the store's generic
// errors: the entity and field they name reach the client, nothing else.
func TestStoreErrorProblems(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantType   string
		wantDetail string
		wantField  string
	}{
		{"NotFoundBook", &store.NotFoundError{Entity: "book", Key: "id 1"}, 404, "not-found", "no book has this id", ""},
		{"NotFoundUser", &store.NotFoundError{Entity: "user", Key: "id 1"}, 404, "not-found", "no user has this id", ""},
		{"NotFoundBare", store.ErrNotFound, 404, "not-found", "not found", ""},
		{"ConflictUserEmail", &store.ConflictError{Entity: "user", Field: "email"}, 409, "conflict", "another user already has this email", "email"},
		{"ConflictWrapped", fmt.Errorf("create: %w", &store.ConflictError{Entity: "book", Field: "isbn"}), 409, "conflict", "another book already has this isbn", "isbn"},
		{"ConflictBare", store.ErrConflict, 409, "conflict", "the request conflicts with the stored data", ""},
		{"StaleTyped", &store.StaleError{Entity: "book"}, 412, "precondition-failed", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *rest.Options) { o.Books = faultyStore{err: tt.err} })
			r := e.do(t, request{method: "GET", path: "/api/v1/books/1"})
			p := wantProblem(t, r, tt.wantStatus, tt.wantType, tt.wantField)
			if tt.wantDetail != "" && p.Detail != tt.wantDetail {
				t.Errorf("detail %q, want %q", p.Detail, tt.wantDetail)
			}
			if tt.wantField == "" && len(p.Errors) != 0 {
				t.Errorf("errors %v, want none", p.Errors)
			}
			if tt.wantField != "" && (len(p.Errors) != 1 || p.Errors[0].Message != "is already in use") {
				t.Errorf("errors %v, want one saying the field is already in use", p.Errors)
			}
		})
	}
}
