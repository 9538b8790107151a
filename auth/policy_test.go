package auth_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bookhub/bookhub/auth"
)

func TestCheckPassword(t *testing.T) {
	const email = "Alice.Smith@example.com"
	related := []string{email, "Alice Smith"}
	cases := []struct {
		name   string
		pw     string
		reason string // "" = accepted
	}{
		{"OK", "correct horse battery staple", ""},
		{"OKTenRunes", "q7#Lm2vX9z", ""},
		{"OKUnicodeTenRunes", "äöüßéèêëçñ", ""},
		{"OKMaxBytes", strings.Repeat("xyz", 85) + "a", ""},
		{"OKContainsEmail", "my email is " + email, ""},
		{"Empty", "", "at least 10"},
		{"NineRunes", "q7#Lm2vX9", "at least 10"},
		{"NineRunesManyBytes", "äöüßéèêëç", "at least 10"},
		{"TooLong", strings.Repeat("xyz", 86), "at most 256"},
		{"InvalidUTF8", "abcdefghij\xff", "UTF-8"},
		{"OneCharRepeated", "aaaaaaaaaaaa", "too few different"},
		{"TwoCharsRepeated", "abababababab", "too few different"},
		{"Common", "password123", "most commonly used"},
		{"CommonDigits", "1234567890", "most commonly used"},
		{"CommonKeyboard", "qwertyuiop", "most commonly used"},
		{"CommonMixedCase", "PassWord123", "most commonly used"},
		{"CommonUpper", "QWERTYUIOP", "most commonly used"},
		{"CommonWithSuffix", "dragon2026!!", "digits or symbols appended"},
		{"CommonWithDigits", "iloveyou12345", "digits or symbols appended"},
		{"Bookhub", "bookhub2026", "most commonly used"},
		{"Email", email, "email address or name"},
		{"EmailOtherCase", strings.ToUpper(email), "email address or name"},
		{"EmailLocalPart", "alice.smith", "email address or name"},
		{"DisplayName", "alice smith", "email address or name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := auth.CheckPassword(tc.pw, related...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("CheckPassword(%q) = %v", tc.pw, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrWeakPassword) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("CheckPassword(%q) = %v, want ErrWeakPassword mentioning %q", tc.pw, err, tc.reason)
			}
		})
	}
}

func TestCheckPasswordIgnoresEmptyRelated(t *testing.T) {
	if err := auth.CheckPassword("correct horse battery staple", "", "  "); err != nil {
		t.Fatal(err)
	}
}

// TestCommonPasswordList keeps the embedded list usable: big enough, one
// lowercase entry per line, no blanks or duplicates, and CheckPassword
// refuses every entry long enough to pass the length rule.
func TestCommonPasswordList(t *testing.T) {
	data, err := os.ReadFile("commonpasswords.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 300 {
		t.Fatalf("list has %d entries, want at least 300", len(lines))
	}
	seen := map[string]bool{}
	for i, l := range lines {
		if l == "" || l != strings.ToLower(strings.TrimSpace(l)) || seen[l] {
			t.Fatalf("line %d %q: blank, not lowercase, padded or duplicate", i+1, l)
		}
		seen[l] = true
		if utf8.RuneCountInString(l) >= auth.MinPasswordRunes {
			if err := auth.CheckPassword(l); !errors.Is(err, auth.ErrWeakPassword) {
				t.Errorf("CheckPassword(%q) = %v", l, err)
			}
		}
	}
}
