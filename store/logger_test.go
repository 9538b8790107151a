package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

func openLogged(t *testing.T, slow time.Duration) (*store.Store, *testenv.LogBuffer) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	s, err := store.Open(testContext(t), store.Options{
		URL:       sqliteURL(t),
		Logger:    logs.Logger(),
		SlowQuery: slow,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

func TestSlowStatementsAreLoggedWithoutValues(t *testing.T) {
	const private = "Private-Title-Value"
	s, logs := openLogged(t, time.Nanosecond) // every statement is "slow"
	ctx := testContext(t)
	b := mustCreate(t, s, store.Book{Title: private, Author: private, ISBN: "9780306406157", PriceCents: 987654})
	if _, err := s.List(ctx, store.ListOptions{Query: private, Author: private}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "slow sql statement") || !strings.Contains(out, "level=WARN") {
		t.Fatalf("no slow statement warning in logs:\n%s", out)
	}
	for _, value := range []string{private, "9780306406157", "987654"} {
		if strings.Contains(out, value) {
			t.Errorf("logs contain parameter value %q:\n%s", value, out)
		}
	}
}

func TestExpectedErrorsAreNotLogged(t *testing.T) {
	s, logs := openLogged(t, -1) // slow-statement logging off
	ctx := testContext(t)
	mustCreate(t, s, store.Book{Title: "T", Author: "A", ISBN: "9780306406157"})
	if _, err := s.Create(ctx, store.Book{Title: "T", Author: "A", ISBN: "9780306406157"}); err == nil {
		t.Fatal("duplicate ISBN accepted")
	}
	if _, err := s.Get(ctx, 424242); err == nil {
		t.Fatal("Get of a missing book succeeded")
	}
	if _, err := s.Update(ctx, 424242, 0, func(*store.Book) error { return nil }); err == nil {
		t.Fatal("Update of a missing book succeeded")
	}
	if out := logs.String(); strings.Contains(out, "level=WARN") {
		t.Errorf("normal outcomes were logged as warnings:\n%s", out)
	}
}

func TestFailedStatementsAreLogged(t *testing.T) {
	s, logs := openLogged(t, -1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(testContext(t), 1); err == nil {
		t.Fatal("Get on a closed store succeeded")
	}
	if out := logs.String(); !strings.Contains(out, "sql statement failed") {
		t.Errorf("no warning for a failed statement:\n%s", out)
	}
}
