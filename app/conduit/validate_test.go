package conduit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlugify(t *testing.T) {
	tests := []struct{ title, want string }{
		{"How to train your dragon", "how-to-train-your-dragon"},
		{"  Did you train your dragon?  ", "did-you-train-your-dragon"},
		{"C++ & Go: 2 langs", "c-go-2-langs"},
		{"日本語", "article"},
		{"---", "article"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Slugify(tt.title), "Slugify(%q)", tt.title)
	}
	assert.LessOrEqual(t, len(Slugify(strings.Repeat("word ", 100))), 80)
}

func FuzzSlugifyMakesValidSlugs(f *testing.F) {
	for _, s := range []string{"How to train your dragon", "", "--a--b--", "ÄÖÜ ß", "<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, title string) {
		slug := Slugify(title)
		if err := ValidSlug(slug); err != nil {
			t.Fatalf("Slugify(%q) = %q, which ValidSlug rejects", title, slug)
		}
		if err := ValidSlug(slug + "-" + SlugSuffix()); err != nil {
			t.Fatalf("suffixed slug %q rejected", slug)
		}
	})
}

func TestNormalizeTags(t *testing.T) {
	got, err := NormalizeTags([]string{" training", "dragons", "dragons"})
	require.NoError(t, err)
	assert.Equal(t, []string{"dragons", "training"}, got)
	for _, bad := range [][]string{{""}, {strings.Repeat("x", MaxTag+1)}, make21()} {
		_, err := NormalizeTags(bad)
		assert.Error(t, err, "NormalizeTags(%q)", bad)
	}
}

func make21() []string {
	var out []string
	for i := range MaxTags + 1 {
		out = append(out, strings.Repeat("t", i+1))
	}
	return out
}

func TestValidators(t *testing.T) {
	assert.NoError(t, ValidUsername("celeb_u123.x-y"))
	assert.Error(t, ValidUsername("has space"))
	assert.Error(t, ValidUsername("$ne"))
	assert.NoError(t, ValidEmail("jake@example.com"))
	assert.Error(t, ValidEmail("Jake <jake@example.com>"), "only a bare address")
	assert.Error(t, ValidPassword(strings.Repeat("p", MaxPassword+1)), "bcrypt's 72-byte limit")
	assert.Error(t, ValidSlug("../etc"))
	assert.Error(t, Required("title", "   ", 10))
	assert.Error(t, MaxLen("bio", strings.Repeat("é", 5), 4), "length counts characters")
	assert.Equal(t, CodeInvalid, CodeOf(ValidSlug("UPPER")))
}

func TestWhatTheAPIRefusesToStore(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"username", ValidUsername("alice"), true},
		{"username .", ValidUsername("."), false},
		{"username ..", ValidUsername(".."), false},
		{"username ...", ValidUsername("..."), true},
		{"username with a slash", ValidUsername("a/b"), false},
		{"password of 12", ValidPassword("tulip-engine-42"), true},
		{"password 12345678", ValidPassword("12345678"), false},
		{"password of 11", ValidPassword("tulip-engin"), false},
		{"password of spaces", ValidPassword(strings.Repeat(" ", 12)), false},
		{"password of one letter", ValidPassword(strings.Repeat("a", 16)), false},
		{"a common password", ValidPassword("1qaz2wsx3edc"), false},
		{"a common password, other case", ValidPassword("QWERTY123456"), false},
		{"a common one with digits added", ValidPassword("password1234"), false},
		{"a common one with symbols added", ValidPassword("football!!!!"), false},
		{"longer than bcrypt takes", ValidPassword(strings.Repeat("ab", 37)), false},
		{"https image", ValidImage("https://example.com/a.png"), true},
		{"http image", ValidImage("http://example.com/a.png"), true},
		{"no image", ValidImage(""), true},
		{"javascript: image", ValidImage("javascript:alert(document.cookie)"), false},
		{"data: image", ValidImage("data:image/png;base64,AAAA"), false},
		{"relative image", ValidImage("/etc/passwd"), false},
		{"image with credentials", ValidImage("https://user:pw@example.com/a.png"), false},
		{"image with a newline", ValidImage("https://example.com/a\n.png"), false},
		{"title", ValidText("title", "How to train your dragon 🐉", false), true},
		{"title with RLO", ValidText("title", "evil\u202Egnp.exe", false), false},
		{"title with NUL", ValidText("title", "a\x00b", false), false},
		{"title with ESC", ValidText("title", "a\x1b[31mb", false), false},
		{"title with a newline", ValidText("title", "a\nb", false), false},
		{"bio with newlines", ValidText("bio", "line one\nline two", true), true},
		{"bio with a zero-width space", ValidText("bio", "a\u200bb", true), false},
		{"body with emoji ZWJ", ValidBody("body", "family 👨\u200d👩\u200d👧\n"), true},
		{"body with NUL", ValidBody("body", "a\x00b"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ok {
				assert.NoError(t, tt.err)
			} else {
				assert.Equal(t, CodeInvalid, CodeOf(tt.err), "%v", tt.err)
			}
		})
	}
	for _, tags := range [][]string{{"a\x00"}, {"\u202Eevil"}, {"\u200b"}, {"\u200b\u200c"}, {"tab\there"}} {
		_, err := NormalizeTags(tags)
		assert.Error(t, err, "tags %q", tags)
	}
}

// Passwords (NIST SP 800-63B 5.1.1.2): length in characters, and nothing
// guessable from a rule — runs, repeats, keyboard walks, the site's name or
// the person's own names with a little around them.
func TestPasswordsThatFollowARuleAreRefused(t *testing.T) {
	tests := []struct {
		password string
		context  []string
		ok       bool
	}{
		{"123456789012", nil, false},
		{"abcdefghijkl", nil, false},
		{"zyxwvutsrqpo", nil, false},
		{"qwertyqwerty", nil, false},
		{"poiuytrewqpo", nil, false},
		{"abcabcabcabc", nil, false},
		{"asdfghjkl;'a", nil, false},
		{"abcdefgh1234", nil, false},
		{"conduit12345", nil, false},
		{"12345conduit", nil, false},
		{"alice2026!!!", []string{"alice", "alice@example.com"}, false},
		{"wonderland2026", []string{"alice", "wonderland@example.com"}, false},
		{"这是一个很长的中文密码短语二十五个字符的密码短语呢", nil, true}, // 25 characters: 75 bytes
		{"correct-horse-battery", []string{"alice", "alice@example.com"}, true},
		{"alice-in-the-long-grass", []string{"alice", "alice@example.com"}, true},
		{"Tr0ub4dor&3-plus", nil, true},
		{strings.Repeat("x", 11) + "y", nil, true},
		{strings.Repeat("é", 11), nil, false},            // 11 characters
		{strings.Repeat("correcthorse", 21), nil, false}, // 255 characters but a repeat
		{strings.Repeat("abcdefghijklmnopqrstuvwxyz", 10), nil, false},
		{"x" + strings.Repeat("correct horse battery ", 11), nil, true}, // not a repeat from its first character: 243 characters carry it,
	}
	for _, tt := range tests {
		err := ValidPassword(tt.password, tt.context...)
		if tt.ok {
			assert.NoError(t, err, "%q", tt.password)
		} else {
			assert.Error(t, err, "%q", tt.password)
		}
	}
	assert.ErrorContains(t, ValidPassword(strings.Repeat("é", 11)), "12 to 256 characters")
}
