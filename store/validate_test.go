package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/store"
)

func TestNormalizeISBN(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means refused
	}{
		{"9780306406157", "9780306406157"},
		{"978-0-306-40615-7", "9780306406157"},
		{" 978 0306406157 ", "9780306406157"},
		{"979-10-90636-07-1", "9791090636071"},
		// ISBN-10s become the ISBN-13 of the same book.
		{"0-306-40615-2", "9780306406157"},
		{"0306406152", "9780306406157"},
		{"080442957X", "9780804429573"},
		{"080442957x", "9780804429573"},
		{"155404295X", "9781554042951"},
		{"0-19-852663-6", "9780198526636"},
		// Refused.
		{"9780306406158", ""},  // check digit
		{"0306406153", ""},     // check digit
		{"97803064061570", ""}, // too long
		{"X306406152", ""},     // X not last
		{"978030640615X", ""},  // X in an ISBN-13
		{"1234567890128", ""},  // valid check digit, not a 978/979 prefix
		{"97803064061", ""},    // 11 digits
		{"", ""},
		{"---", ""},
		{"978–0306406157", ""}, // en dash is not a hyphen
		{"ISBN 9780306406157", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := store.NormalizeISBN(tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("NormalizeISBN(%q) = %q, want an error", tt.in, got)
			case tt.want != "" && (err != nil || got != tt.want):
				t.Errorf("NormalizeISBN(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizeText(t *testing.T) {
	accepts := []struct {
		name, in, want string
	}{
		{"Plain", "Dune", "Dune"},
		{"TrimsSpaces", "  Dune \u00a0\u3000", "Dune"},
		{"KeepsInnerSpaces", "The  Left Hand", "The  Left Hand"},
		{"Accents", "Été", "Été"},
		{"DecomposedAccent", "e\u0301te\u0301", "e\u0301te\u0301"},
		{"EmojiWithJoiner", "\U0001F469\u200D\U0001F4BB Coding", "\U0001F469\u200D\U0001F4BB Coding"},
		// The flag of Scotland ends in tag characters (Cf): they stay.
		{"FlagTagSequence", "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"},
		{"FormatCharacterBetweenLetters", "a\u200Bb", "a\u200Bb"},
		{"SoftHyphenInWord", "co\u00ADoperate", "co\u00ADoperate"},
		{"RightToLeft", "\u05E9\u05DC\u05D5\u05DD", "\u05E9\u05DC\u05D5\u05DD"},
		{"MaxLength", strings.Repeat("é", store.MaxTextLen), strings.Repeat("é", store.MaxTextLen)},
		{"MaxLengthAfterTrim", "  " + strings.Repeat("a", store.MaxTextLen) + "  ", strings.Repeat("a", store.MaxTextLen)},
	}
	for _, tt := range accepts {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			got, err := store.NormalizeText(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("NormalizeText(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	refuses := []struct {
		name, in, msg string
	}{
		{"Empty", "", "must not be empty"},
		{"Spaces", "   \u00a0", "must not be empty"},
		{"ZeroWidthSpace", "\u200B", "must not be empty"},
		{"FormatCharacters", "\u200D\uFEFF\u2060\u200C", "must not be empty"},
		{"FormatAndSpaces", " \u200B \u200B ", "must not be empty"},
		{"SoftHyphenOnly", "\u00AD", "must not be empty"},
		{"BidiMarksOnly", "\u200E\u200F\u202E", "must not be empty"},
		{"NUL", "\x00", "control characters"},
		{"NULs", "\x00\x00\x00", "control characters"},
		{"NULInside", "Du\x00ne", "U+0000 at character 3"},
		{"Tab", "Dune\tMessiah", "U+0009"},
		{"TrailingNewline", "Dune\n", "U+000A"},
		{"CarriageReturn", "\rDune", "U+000D"},
		{"Escape", "\x1b[31mDune", "U+001B"},
		{"DEL", "Dune\x7f", "U+007F"},
		{"C1NextLine", "Dune\u0085", "U+0085"},
		{"LineSeparator", "Dune\u2028Messiah", "U+2028"},
		{"ParagraphSeparator", "Dune\u2029", "U+2029"},
		{"CombiningOnly", "\u0301", "combining mark"},
		{"CombiningFirst", "\u0301Dune", "combining mark"},
		{"CombiningAfterFormat", "\u200B\u0308x", "combining mark"},
		{"TooLong", strings.Repeat("a", store.MaxTextLen+1), "at most 255 characters, got 256"},
		{"InvalidUTF8", "\xff", "UTF-8"},
	}
	for _, tt := range refuses {
		t.Run("Refused/"+tt.name, func(t *testing.T) {
			got, err := store.NormalizeText(tt.in)
			if err == nil {
				t.Fatalf("NormalizeText(%q) = %q, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("NormalizeText(%q) error %q does not say %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestBookNormalize(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		got, err := store.Book{Title: " Dune ", Author: "Frank Herbert", ISBN: "0-306-40615-2", PriceCents: 1, Stock: 0}.Normalize()
		want := store.Book{Title: "Dune", Author: "Frank Herbert", ISBN: "9780306406157", PriceCents: 1}
		if err != nil || got != want {
			t.Errorf("Normalize = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("NoISBNIsFine", func(t *testing.T) {
		if _, err := (store.Book{Title: "a", Author: "b"}).Normalize(); err != nil {
			t.Errorf("Normalize: %v", err)
		}
	})
	t.Run("ErrInvalidBook", func(t *testing.T) {
		_, err := store.Book{Title: "\x00", Author: "\u200B", ISBN: "123", PriceCents: -1, Stock: -1}.Normalize()
		if !errors.Is(err, store.ErrInvalidBook) {
			t.Fatalf("err = %v, want ErrInvalidBook", err)
		}
		var ve *store.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("err %T is not a *ValidationError", err)
		}
		var fields []string
		for _, f := range ve.Fields {
			if f.Message == "" {
				t.Errorf("field %s without a message", f.Field)
			}
			fields = append(fields, f.Field)
		}
		if got, want := strings.Join(fields, ","), "Title,Author,ISBN,PriceCents,Stock"; got != want {
			t.Errorf("fields %s, want %s", got, want)
		}
	})
}

// TestWritesApplyTheRules checks that Create and Update enforce the entity
// rules themselves, whoever calls them.
func TestWritesApplyTheRules(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		t.Run("CreateNormalizes", func(t *testing.T) {
			got := mustCreate(t, s, store.Book{Title: "  Spaced  ", Author: "A", ISBN: "0-8044-2957-X"})
			if got.Title != "Spaced" || got.ISBN != "9780804429573" {
				t.Errorf("Create returned %+v, want the trimmed title and the ISBN-13", got)
			}
			if stored := mustGet(t, s, got.ID); stored != got {
				t.Errorf("Get = %+v, want %+v", stored, got)
			}
		})
		t.Run("CreateErrInvalidBook", func(t *testing.T) {
			for _, b := range []store.Book{
				{Title: "\x00\x00", Author: "A"},
				{Title: "T", Author: "\u200B\uFEFF"},
				{Title: "T", Author: "A", ISBN: "9780306406158"},
				{Title: "T", Author: "A", Stock: -1},
			} {
				if _, err := s.Create(ctx, b); !errors.Is(err, store.ErrInvalidBook) {
					t.Errorf("Create(%+v): err = %v, want ErrInvalidBook", b, err)
				}
			}
		})
		t.Run("ISBN10OfAnExistingISBN13IsErrConflict", func(t *testing.T) {
			mustCreate(t, s, store.Book{Title: "Thirteen", Author: "A", ISBN: "9780306406157"})
			if _, err := s.Create(ctx, store.Book{Title: "Ten", Author: "A", ISBN: "0306406152"}); !errors.Is(err, store.ErrConflict) {
				t.Errorf("Create: err = %v, want ErrConflict", err)
			}
			b := mustCreate(t, s, store.Book{Title: "Other", Author: "A"})
			_, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.ISBN = "0-306-40615-2"; return nil })
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("Update: err = %v, want ErrConflict", err)
			}
		})
		t.Run("UpdateNormalizesChangedFields", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A"})
			got, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Title, x.ISBN = " New ", "155404295x"; return nil })
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.Title != "New" || got.ISBN != "9781554042951" {
				t.Errorf("Update returned %+v", got)
			}
		})
		t.Run("UpdateErrInvalidBookWritesNothing", func(t *testing.T) {
			b := mustCreate(t, s, store.Book{Title: "T", Author: "A", Stock: 1})
			_, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Title, x.Stock = "Bad\tTitle", 2; return nil })
			var ve *store.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "Title" {
				t.Fatalf("err = %v, want a ValidationError naming Title", err)
			}
			if got := mustGet(t, s, b.ID); got != b {
				t.Errorf("refused update changed the book: %+v", got)
			}
		})
		t.Run("LegacyRowStaysEditable", func(t *testing.T) {
			// A row from before the rules: a tab in the title, an ISBN-10.
			b := insertRaw(t, s, "Old\tTitle", "A", "080442957X")
			got, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Stock = 5; return nil })
			if err != nil {
				t.Fatalf("Update of another field: %v", err)
			}
			if got.Title != "Old\tTitle" || got.ISBN != "080442957X" || got.Stock != 5 {
				t.Errorf("Update returned %+v, want the old title and ISBN kept", got)
			}
			if _, err := s.Update(ctx, b.ID, 0, func(x *store.Book) error { x.Title = "Still\tbad"; return nil }); !errors.Is(err, store.ErrInvalidBook) {
				t.Errorf("rewriting the title with a tab: err = %v, want ErrInvalidBook", err)
			}
		})
	})
}
