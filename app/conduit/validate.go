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
	MaxPassword    = 256 // characters (passwords are pre-hashed: bcrypt's 72-byte limit does not apply)
	MaxTitle       = 256
	MaxDescription = 1024
	MaxBody        = 64 << 10
	MaxTags        = 20
	MaxTag         = 64
	MaxComment     = 16 << 10
	MaxBio         = 4096
	MaxImage       = 2048
	MaxLimit       = 100

	// MaxOffset is the largest offset of a list: a page is an index walk of
	// offset+limit entries, so this bounds it whatever the data's size.
	// Farther pages are reached by a list's own filters (author, tag),
	// which is how people look for something older.
	MaxOffset = 1000
	// MaxCount is the most a list's articlesCount says: counting stops
	// there (a count is an index walk too). It exceeds MaxOffset+MaxLimit,
	// so a page past the last reachable one is never offered.
	MaxCount = 10_000
	// MaxCommentsPerArticle is how many comments one article takes, its
	// author's included: with MaxComment, it bounds an article's thread in
	// bytes; a page of it is at most MaxLimit comments whatever its size.
	MaxCommentsPerArticle = 10_000
	// MaxSessions is how many live sessions one account keeps: a sign-in
	// past it ends the oldest (their holders are told why).
	MaxSessions = 20
	// MaxFollowing is how many people one account follows: the feed reads
	// every one of them.
	MaxFollowing = 1000
	// MaxFavoritedScan is how many of a person's newest favorites a
	// favorited= list with another filter (tag, author) looks through.
	MaxFavoritedScan = 1000
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

// ValidPassword checks a new password (NIST SP 800-63B 5.1.1.2, ASVS
// 2.1): 12 to 256 characters (counted as characters: "пароль" is 6), not
// blank, and not guessable from a list or a rule: not one of the 30,000
// most common passwords (zxcvbn's "passwords" list, from Xato's corpus of
// 10 million leaked ones; any case), nor one of them with digits or symbols
// added at the end ("password1234"); not a run or a repeat ("abcdefghijkl",
// "123456789012", "zyxwvutsrqpo", "abcabcabcabc"), nor a keyboard walk
// ("qwertyqwerty", "1qaz2wsx3edc" is left to the list); not the site's name,
// the person's username or the name of their email address with a few
// characters around it ("conduit12345", "alice2026!!").
func ValidPassword(s string, context ...string) error {
	n := utf8.RuneCountInString(s)
	if n < MinPassword || n > MaxPassword {
		return Errorf(CodeInvalid, "password must be %d to %d characters", MinPassword, MaxPassword)
	}
	if strings.TrimSpace(s) == "" || strings.Count(s, s[:1]) == len(s) {
		return Errorf(CodeInvalid, "password is too easy to guess")
	}
	if commonPassword(s) {
		return Errorf(CodeInvalid, "password is one of the most common passwords; choose another")
	}
	if patterned(strings.ToLower(s)) {
		return Errorf(CodeInvalid, "password is a sequence, a repeat or a keyboard pattern; choose another")
	}
	if word, ok := aroundContext(strings.ToLower(s), context); ok {
		return Errorf(CodeInvalid, "password is built on %q; choose one that is not", word)
	}
	return nil
}

// keyboardRows are the rows a keyboard walk follows (QWERTY, forwards;
// backwards is checked too).
var keyboardRows = []string{"`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"}

// patterned reports whether s (lower case) is, once digits and symbols at
// its end are set aside, one unit said at least twice ("abcabc", "qwerty
// qwerty"), or once when it is a run of successive characters ("abcdef",
// "4321") or a stretch of a keyboard row ("qwertyuiop").
func patterned(s string) bool {
	core := strings.TrimRightFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if utf8.RuneCountInString(core) < 6 {
		core = s // all digits or symbols: the whole of it
	}
	r := []rune(core)
	for period := 1; period <= len(r); period++ {
		if !repeats(r, period) {
			continue
		}
		unit := string(r[:period])
		if period <= len(r)/2 || isRun([]rune(unit)) || onKeyboard(unit) {
			return true // repeated at least twice, or a run or a walk once
		}
	}
	return false
}

// repeats reports whether r is its first period runes over and over (a
// last, partial repeat allowed).
func repeats(r []rune, period int) bool {
	for i := period; i < len(r); i++ {
		if r[i] != r[i-period] {
			return false
		}
	}
	return true
}

// isRun reports whether r steps by +1 or -1 throughout ("abcd", "9876").
func isRun(r []rune) bool {
	if len(r) < 3 {
		return false
	}
	step := r[1] - r[0]
	if step != 1 && step != -1 {
		return false
	}
	for i := 2; i < len(r); i++ {
		if r[i]-r[i-1] != step {
			return false
		}
	}
	return true
}

// onKeyboard reports whether unit is a stretch of a keyboard row, either
// way.
func onKeyboard(unit string) bool {
	if len(unit) < 3 {
		return false
	}
	for _, row := range keyboardRows {
		if strings.Contains(row, unit) || strings.Contains(reverse(row), unit) {
			return true
		}
	}
	return false
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// siteWords are guessed first against any account here.
var siteWords = []string{"conduit", "realworld"}

// aroundContext reports the word s is built on: the site's name, or one
// of context (username, email) or its email's name, with at most 5 other
// characters, or any number of digits and symbols.
func aroundContext(s string, context []string) (string, bool) {
	words := slices.Clone(siteWords)
	for _, c := range context {
		c = strings.ToLower(c)
		if name, _, ok := strings.Cut(c, "@"); ok {
			words = append(words, name)
		}
		words = append(words, c)
	}
	for _, w := range words {
		if utf8.RuneCountInString(w) < 4 || !strings.Contains(s, w) {
			continue
		}
		rest := strings.Replace(s, w, "", 1)
		if utf8.RuneCountInString(rest) <= 5 || strings.IndexFunc(rest, unicode.IsLetter) < 0 {
			return w, true
		}
	}
	return "", false
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
