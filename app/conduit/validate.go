package conduit

import (
	"crypto/rand"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on user input.
const (
	MaxUsername    = 64
	MinPassword    = 8
	MaxPassword    = 72 // bcrypt's limit, in bytes
	MaxTitle       = 256
	MaxDescription = 1024
	MaxBody        = 64 << 10
	MaxTags        = 20
	MaxTag         = 64
	MaxComment     = 16 << 10
	MaxBio         = 4096
	MaxImage       = 2048
	MaxLimit       = 100
)

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	slugRE     = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
)

// ValidUsername checks a username.
func ValidUsername(s string) error {
	if !usernameRE.MatchString(s) {
		return Errorf(CodeInvalid, "username must be 1 to %d letters, digits, '_', '.' or '-'", MaxUsername)
	}
	return nil
}

// ValidEmail checks an email address.
func ValidEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return Errorf(CodeInvalid, "email is invalid")
	}
	return nil
}

// ValidPassword checks a new password.
func ValidPassword(s string) error {
	if len(s) < MinPassword || len(s) > MaxPassword {
		return Errorf(CodeInvalid, "password must be %d to %d bytes", MinPassword, MaxPassword)
	}
	return nil
}

// ValidSlug checks a slug taken from a path.
func ValidSlug(s string) error {
	if len(s) > 300 || !slugRE.MatchString(s) {
		return Errorf(CodeInvalid, "slug is invalid")
	}
	return nil
}

// Required checks a required text field and its length.
func Required(field, v string, max int) error {
	if strings.TrimSpace(v) == "" {
		return Errorf(CodeInvalid, "%s can't be empty", field)
	}
	return MaxLen(field, v, max)
}

// MaxLen checks a field's length in characters.
func MaxLen(field, v string, max int) error {
	if utf8.RuneCountInString(v) > max {
		return Errorf(CodeInvalid, "%s is too long (maximum %d characters)", field, max)
	}
	return nil
}

// NormalizeTags trims, de-duplicates and sorts tags, and checks them.
func NormalizeTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t == "" {
			return nil, Errorf(CodeInvalid, "tagList can't contain empty tags")
		}
		if utf8.RuneCountInString(t) > MaxTag {
			return nil, Errorf(CodeInvalid, "tag is too long (maximum %d characters)", MaxTag)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxTags {
		return nil, Errorf(CodeInvalid, "tagList has more than %d tags", MaxTags)
	}
	return out, nil
}

// Slugify turns a title into a slug: lower-case ASCII letters and digits
// separated by single dashes. Titles with no such characters give "article".
func Slugify(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
		if b.Len() >= 80 {
			break
		}
	}
	s := b.String()
	if len(s) > 80 {
		s = s[:80]
	}
	s = strings.Trim(s, "-")
	if s == "" {
		return "article"
	}
	return s
}

// SlugSuffix is a short random suffix that makes a taken slug unique.
func SlugSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
