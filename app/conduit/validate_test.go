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
