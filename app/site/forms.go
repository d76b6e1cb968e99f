package site

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// field is one form field as the "field" template prints it: a visible
// label, the rule as a hint before anyone submits, and after a refusal the
// message tied to the field (aria-describedby, aria-invalid).
type field struct {
	ID, Name, Label string
	// API is the field's names in the api's messages, space-separated
	// ("tagList tag"): a message that starts with one belongs to this
	// field; one that starts with the first is shown starting with Label
	// instead ("currentPassword is required" → "Current password is
	// required").
	API                 string
	Type                string // input type; "" with Rows > 0 is a textarea
	Value               string
	Hint                string
	Autocomplete        string
	Required, Large     bool
	Rows                int
	MaxLength           int
	Errors              []string
	Autofocus, NoSubmit bool
}

// DescribedBy is the ids of the hint and the error, for aria-describedby.
func (f field) DescribedBy() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if len(f.Errors) > 0 {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// problem is one line of a refused form's error summary: the message and,
// when it is about a field, a link to it.
type problem struct {
	Message, Href string
}

// formView is a form: where it goes, its fields, and after a refusal the
// summary that takes the focus (the page title says "Error:" too).
type formView struct {
	Action, Submit, Next string
	// Version is the entity tag of the version of the thing the form edits
	// (a hidden field: the edit names it in If-Match); "" for none.
	Version string
	// Shown is what the form showed of the saved version (shownOf: a
	// short hash per field, a hidden field), so that after a conflict the
	// fields the person did not change can take the saved values.
	Shown    string
	Fields   []field
	Problems []problem
}

// shownOf is the hidden "shown" value of values (field name → value as
// the form shows it): name:hash pairs, the hash of the normalized value.
func shownOf(values map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(values)) {
		parts = append(parts, name+":"+shownHash(values[name]))
	}
	return strings.Join(parts, ",")
}

func shownHash(v string) string {
	sum := sha256.Sum256([]byte(normalizeNewlines(v)))
	return hex.EncodeToString(sum[:8])
}

// shownValues parses a posted "shown" value (nil: none, or not ours).
func shownValues(posted string) map[string]string {
	if posted == "" || len(posted) > 4096 {
		return nil
	}
	out := map[string]string{}
	for _, p := range strings.Split(posted, ",") {
		name, h, ok := strings.Cut(p, ":")
		if !ok {
			return nil
		}
		out[name] = h
	}
	return out
}

// resolveConflict is a form that met a saved version other than the one it
// was made from: each field the person left as it was shown takes the
// saved value (told so), each field they changed keeps what they typed,
// and where the saved version changed it too, that is said (a field only
// they changed is theirs, and nothing is said of it). saved and sent
// are normalized values by field name (what compare); shown is what the
// form had shown (shownValues; nil: unknown, so every typed value is kept
// and every difference said). It returns the summary's lines.
func resolveConflict(f *formView, saved, sent, shown map[string]string, intro string) []problem {
	out := []problem{{Message: intro}}
	for i := range f.Fields {
		fl := &f.Fields[i]
		now, ok := saved[fl.Name]
		if !ok || normalizeNewlines(now) == normalizeNewlines(sent[fl.Name]) {
			continue
		}
		var msg string
		h, known := shown[fl.Name]
		if known && h == shownHash(now) {
			continue // changed here only: the person's own change, kept
		}
		if known && h == shownHash(sent[fl.Name]) {
			// Not changed here: the saved version's value, so that saving
			// again does not undo the other change.
			fl.Value = now
			msg = fl.Label + " was changed in the saved version: the form now shows it"
		} else {
			msg = fl.Label + " is now “" + now + "” in the saved version: yours is kept below"
			if fl.Rows > 0 {
				msg = fl.Label + " is now different in the saved version: yours is kept below"
			}
			fl.Errors = append(fl.Errors, msg)
		}
		out = append(out, problem{Message: msg, Href: "#" + fl.ID})
	}
	return out
}

// Failed reports whether the form was refused.
func (f formView) Failed() bool { return len(f.Problems) > 0 }

// refuse ties the api's messages to the fields they are about: each
// message that starts with a field's api name is shown under that field,
// spoken as its label ("currentPassword is required" → "Current password
// is required"); the rest are the form's. All go in the summary.
func (f *formView) refuse(msgs []string) {
	for _, m := range msgs {
		i := f.fieldFor(m)
		if i < 0 {
			f.Problems = append(f.Problems, problem{Message: sentence(m)})
			continue
		}
		fl := &f.Fields[i]
		if api, _, _ := strings.Cut(fl.API, " "); strings.HasPrefix(m, api+" ") {
			m = fl.Label + strings.TrimPrefix(m, api)
		} else {
			m = sentence(m)
		}
		fl.Errors = append(fl.Errors, m)
		f.Problems = append(f.Problems, problem{Message: m, Href: "#" + fl.ID})
	}
	if len(f.Problems) == 0 {
		f.Problems = append(f.Problems, problem{Message: "The form was refused. Check it and try again."})
	}
}

// fieldFor is the index of the field m is about, or -1. "email or
// password is invalid" is about the pair, not the email.
func (f *formView) fieldFor(m string) int {
	word, rest, _ := strings.Cut(m, " ")
	if strings.HasPrefix(rest, "or ") {
		return -1
	}
	for i, fl := range f.Fields {
		if slices.Contains(strings.Fields(fl.API), word) {
			return i
		}
	}
	return -1
}

// sentence starts s with a capital letter.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// tagsOf splits the editor's tags field: one tag per line or between
// commas (Enter in the field starts a new line, never submits the form).
func tagsOf(text string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Rules as people read them before they submit.
const (
	usernameHint = "Letters, digits, “_”, “.” or “-”; at most 64."
	passwordHint = "At least 12 characters; not a common password, a sequence, or your name with a few characters added."
	tagsHint     = "Press Enter or type a comma after each tag."
	markdownHint = "Markdown: **bold**, _italic_, `code`, lists, links, tables."
)

// Form field constructors: the same field looks and reads the same on
// every form.
func usernameField(v string) field {
	return field{ID: "username", Name: "username", API: "username", Label: "Username", Type: "text", Value: v, Hint: usernameHint,
		Autocomplete: "username", Required: true, Large: true, MaxLength: 64}
}

func emailField(v string) field {
	return field{ID: "email", Name: "email", API: "email", Label: "Email", Type: "email", Value: v, Autocomplete: "email", Required: true, Large: true, MaxLength: 254}
}
