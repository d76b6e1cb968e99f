package conduit

import (
	"crypto/rand"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn/frequency"
)

// Limits on user input.
const (
	MaxUsername    = 64
	MinPassword    = 12
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

// ValidUsername checks a username: one a URL path segment carries as it
// is (not "." or "..", which paths resolve away). Usernames are unique
// without regard to case (the store keys them lower-cased).
func ValidUsername(s string) error {
	if !usernameRE.MatchString(s) {
		return Errorf(CodeInvalid, "username must be 1 to %d letters, digits, '_', '.' or '-'", MaxUsername)
	}
	if s == "." || s == ".." {
		return Errorf(CodeInvalid, "username can't be %q", s)
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

// ValidPassword checks a new password: 12 to 72 bytes, not blank, not
// one character repeated, and not one of the 30,000 most common passwords
// (the "passwords" frequency list of zxcvbn, github.com/trustelem/zxcvbn,
// built from Xato's corpus of 10 million leaked passwords; compared
// without regard to case), nor one of them with digits or symbols added
// at the end ("password1234").
func ValidPassword(s string) error {
	if len(s) < MinPassword || len(s) > MaxPassword {
		return Errorf(CodeInvalid, "password must be %d to %d bytes", MinPassword, MaxPassword)
	}
	if strings.TrimSpace(s) == "" || strings.Count(s, s[:1]) == len(s) {
		return Errorf(CodeInvalid, "password is too easy to guess")
	}
	if commonPassword(s) {
		return Errorf(CodeInvalid, "password is one of the most common passwords; choose another")
	}
	return nil
}

var (
	commonOnce sync.Once
	common     map[string]struct{}
)

func commonPassword(s string) bool {
	commonOnce.Do(func() {
		list := frequency.FrequencyLists["passwords"]
		common = make(map[string]struct{}, len(list))
		for _, p := range list {
			common[strings.ToLower(p)] = struct{}{}
		}
	})
	lower := strings.ToLower(s)
	if _, ok := common[lower]; ok {
		return true
	}
	base := strings.TrimRightFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	_, ok := common[base]
	return ok && len(base) >= 4
}

// ValidText refuses control and format characters (NUL, escapes, bidi
// overrides such as U+202E, zero-width characters) in a one-line field;
// multiline allows newlines and tabs.
func ValidText(field, v string, multiline bool) error {
	if !utf8.ValidString(v) {
		return Errorf(CodeInvalid, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return Errorf(CodeInvalid, "%s can't contain control or formatting characters (U+%04X)", field, r)
		}
	}
	return nil
}

// ValidBody refuses control characters other than newlines and tabs in
// long text (article bodies, comments); format characters stay allowed
// there (emoji sequences join with U+200D).
func ValidBody(field, v string) error {
	if !utf8.ValidString(v) {
		return Errorf(CodeInvalid, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.Is(unicode.Cc, r) && r != '\n' && r != '\r' && r != '\t' {
			return Errorf(CodeInvalid, "%s can't contain control characters (U+%04X)", field, r)
		}
	}
	return nil
}

// Line checks a required one-line field: its length, and no control or
// format characters.
func Line(field, v string, max int) error {
	if err := Required(field, v, max); err != nil {
		return err
	}
	return ValidText(field, v, false)
}

// Text checks a required long text field.
func Text(field, v string, max int) error {
	if err := Required(field, v, max); err != nil {
		return err
	}
	return ValidBody(field, v)
}

// ValidImage checks a profile image: empty, or an absolute http(s) URL.
func ValidImage(v string) error {
	if v == "" {
		return nil
	}
	if err := MaxLen("image", v, MaxImage); err != nil {
		return err
	}
	if err := ValidText("image", v, false); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return Errorf(CodeInvalid, "image must be an http or https URL")
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
		if err := ValidText("tag", t, false); err != nil {
			return nil, err
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
