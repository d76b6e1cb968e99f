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
