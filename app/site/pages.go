package site

import (
	"cmp"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Views: handlers build one per page; templates only print it.
type (
	// previewView is one article of a list, its fields ready to print
	// (a list page renders 20: every lookup and call a template makes
	// costs there).
	previewView struct {
		Slug, Title, Description, Author, Avatar, Created, CreatedISO string
		Favorited                                                     bool
		FavoritesCount                                                int
		TagList                                                       []string
		*viewer
		// HTML is the preview already rendered (anonymous visitors).
		HTML template.HTML
	}
	// viewer is who a list is shown to, shared by its previews; Next is
	// the list's own address, where a favorite made from it returns to.
	viewer struct {
		Me, CSRF, Next string
	}
	pageLink struct {
		N       int
		Href    string
		Current bool
	}
	listView struct {
		Label    string // what the list is, for its pagination's name
		Articles []previewView
		Pages    []pageLink
	}
	homeView struct {
		base
		Tab, Tag string
		Tags     []string
		List     listView
	}
	formPage struct {
		base
		Heading string
		Links   template.HTML // under the heading (sign in ↔ sign up)
		Form    formView
	}
	articleView struct {
		base
		A        article
		Mine     bool
		BodyHTML template.HTML
		Comments []comment
		// The page of comments shown: after the cursor After ("": the
		// first), and the cursor of the next page ("": none).
		After, Next string
		Comment     formView
		MyImage     *string
	}
	profileView struct {
		base
		P               profile
		Mine, Favorites bool
		List            listView
	}
	confirmView struct {
		base
		Heading, Message, Quote, Action, Submit, Cancel string
	}
)

// pageNumber reads ?page=, 1 by default.
func pageNumber(q url.Values) int {
	n, err := strconv.Atoi(q.Get("page"))
	if err != nil || n < 1 || n > 100000 {
		return 1
	}
	return n
}

// listOf builds the list part of a page: previews, and links to at most
// ten pages around the current one. here is the list's own address.
func (s *Site) listOf(v visitor, l articleList, current int, href func(n int) string, here, label string) listView {
	out := listView{Label: label, Articles: make([]previewView, 0, len(l.Articles))}
	who := &viewer{Me: v.username, CSRF: v.formToken, Next: here}
	for _, a := range l.Articles {
		p := previewView{
			Slug: a.Slug, Title: a.Title, Description: a.Description, Author: a.Author.Username, Avatar: s.avatar(a.Author.Image),
			Created: displayDate(a.CreatedAt), CreatedISO: a.CreatedAt.Format(time.RFC3339),
			Favorited: a.Favorited, FavoritesCount: a.FavoritesCount, TagList: a.TagList, viewer: who,
		}
		if v.username == "" {
			if h, err := s.anonymousPreview(p); err == nil {
				p.HTML = h
			}
		}
		out.Articles = append(out.Articles, p)
	}
	pages := (l.ArticlesCount + s.opts.PageSize - 1) / s.opts.PageSize
	first := max(1, current-5)
	last := min(pages, first+9)
	for n := first; n <= last; n++ {
		out.Pages = append(out.Pages, pageLink{N: n, Href: href(n), Current: n == current})
	}
	return out
}

// both runs two api calls at once; the page needs both.
func both(f, g func() error) error {
	var wg sync.WaitGroup
	var errF error
	wg.Add(1)
	go func() { defer wg.Done(); errF = f() }()
	errG := g()
	wg.Wait()
	return errors.Join(errF, errG)
}

// paged is a title for page n of a list (titles differ page to page).
func paged(title string, n int) string {
	if n > 1 {
		return title + ", page " + strconv.Itoa(n)
	}
	return title
}

// home is the article lists: a tag's, the visitor's feed, or everyone's.
// A signed-in visitor who follows people with articles lands on their feed;
// "?feed=global" is everyone's.
func (s *Site) home(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	q := r.URL.Query()
	view := homeView{base: s.page(w, r, v, "home", "Home"), Tab: "global", Tag: q.Get("tag")}
	n := pageNumber(q)
	query := page(n, s.opts.PageSize)
	link := url.Values{}
	switch {
	case view.Tag != "":
		view.Tab = "tag"
		query.Set("tag", view.Tag)
		link.Set("tag", view.Tag)
	case q.Get("feed") == "your" || q.Get("feed") == "" && v.signedIn():
		if !mustSignIn(w, r, v) {
			return
		}
		view.Tab = "your"
		link.Set("feed", "your")
	case q.Get("feed") == "global" && v.signedIn():
		link.Set("feed", "global")
	}
	var list articleList
	err := both(func() (err error) {
		if view.Tab == "your" {
			list, err = s.api.feed(r.Context(), v.token, query)
			if err == nil && list.ArticlesCount == 0 && q.Get("feed") == "" {
				// Nobody followed has written yet: everyone's articles.
				view.Tab = "global"
				link.Set("feed", "global")
				list, err = s.api.articles(r.Context(), v.token, query)
			}
			return err
		}
		list, err = s.api.articles(r.Context(), v.token, query)
		return err
	}, func() (err error) {
		view.Tags, err = s.api.tags(r.Context(), v.token)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch view.Tab {
	case "your":
		view.Title = paged("Your feed", n)
	case "tag":
		view.Title = paged("Articles tagged “"+view.Tag+"”", n)
	default:
		view.Title = paged(map[bool]string{true: "Global feed", false: "Home"}[v.signedIn()], n)
	}
	href := func(n int) string {
		l := url.Values{}
		for k, vs := range link {
			l[k] = vs
		}
		if n > 1 {
			l.Set("page", strconv.Itoa(n))
		}
		if len(l) == 0 {
			return "/"
		}
		return "/?" + l.Encode()
	}
	view.List = s.listOf(v, list, n, href, href(n), "Articles")
	s.render(w, r, http.StatusOK, "home", view)
}

// messages are the api's validation messages, or the error's text.
func messages(err error) ([]string, bool) {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden && len(ae.Messages) > 0) {
		if len(ae.Messages) == 0 {
			return []string{"the request was refused"}, true
		}
		out := make([]string, len(ae.Messages))
		for i, m := range ae.Messages {
			if strings.HasPrefix(m, "Idempotency-Key was used with another request") {
				// This page's form was sent before with other values (the
				// browser's back button): the page shown now is new.
				m = "this form was already sent with other values, so these were not saved: send them again to save them"
			}
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// authForm is the sign-in or sign-up form, with what was typed (never the
// password).
func authForm(register bool, username, email, next string) formView {
	f := formView{Action: "/login", Submit: "Sign in", Next: next}
	pw := field{ID: "password", Name: "password", API: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Required: true, Large: true}
	if register {
		f = formView{Action: "/register", Submit: "Sign up", Next: next, Fields: []field{usernameField(username)}}
		pw.Autocomplete, pw.Hint = "new-password", passwordHint
	}
	f.Fields = append(f.Fields, emailField(email), pw)
	return f
}

func (s *Site) authPage(w http.ResponseWriter, r *http.Request, v visitor, register bool, status int, f formView) {
	title, nav := "Sign in", "login"
	links := template.HTML(`<a href="/register">Need an account? Sign up</a>`)
	if register {
		title, nav = "Sign up", "register"
		links = `<a href="/login">Have an account? Sign in</a>`
	}
	if f.Next != "" && f.Next != "/" {
		other := map[bool]string{true: "/login", false: "/register"}[register]
		links = template.HTML(strings.Replace(string(links), `href="`+other+`"`, `href="`+template.HTMLEscapeString(other+"?next="+url.QueryEscape(f.Next))+`"`, 1))
	}
	view := formPage{base: s.page(w, r, v, nav, title), Heading: title, Links: links, Form: f}
	view.Failed = f.Failed()
	s.render(w, r, status, "form", view)
}

func (s *Site) loginPage(w http.ResponseWriter, r *http.Request) {
	s.authEntry(w, r, false)
}

func (s *Site) registerPage(w http.ResponseWriter, r *http.Request) {
	s.authEntry(w, r, true)
}

// authEntry shows the sign-in or sign-up form; someone already signed in
// goes where they were going instead.
func (s *Site) authEntry(w http.ResponseWriter, r *http.Request, register bool) {
	v := s.visitorOf(w, r)
	back := safeNext(r.URL.Query().Get("next"))
	if v.signedIn() {
		http.Redirect(w, r, cmp.Or(back, "/"), http.StatusSeeOther)
		return
	}
	s.authPage(w, r, v, register, http.StatusOK, authForm(register, "", "", back))
}

func (s *Site) login(w http.ResponseWriter, r *http.Request) {
	s.authenticate(w, r, false)
}

func (s *Site) register(w http.ResponseWriter, r *http.Request) {
	s.authenticate(w, r, true)
}

// authenticate signs in or up with the form's fields; a refusal shows the
// api's messages on the form, with what was typed kept (not the password).
// Success goes where the visitor was going.
func (s *Site) authenticate(w http.ResponseWriter, r *http.Request, register bool) {
	v, ok := s.form(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	in := map[string]any{"email": f.Get("email"), "password": f.Get("password")}
	path := "/api/users/login"
	if register {
		in["username"] = f.Get("username")
		path = "/api/users"
	}
	u, err := s.api.userCall(r.Context(), http.MethodPost, path, "", nil, in)
	if msgs, ok := messages(err); ok {
		form := authForm(register, f.Get("username"), f.Get("email"), safeNext(f.Get("next")))
		form.refuse(msgs)
		s.authPage(w, r, v, register, http.StatusUnprocessableEntity, form)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.jar(w, r).signIn(u.Token, u.Username)
	http.Redirect(w, r, next(r, "/"), http.StatusSeeOther)
}

// logout ends the session on the server (the token is refused from then
// on, wherever it was copied), then forgets it here. When the api cannot
// be told, the browser forgets it anyway and the visitor is told the
// session ends by itself at its idle timeout.
func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok {
		return
	}
	done := "signed-out"
	if v.signedIn() {
		err := s.api.do(r.Context(), http.MethodPost, "/api/users/logout", nil, v.token, nil, nil)
		if err != nil && !hasStatus(err, http.StatusUnauthorized) {
			s.opts.Log.LogAttrs(r.Context(), slog.LevelWarn, "sign-out not recorded by the api", slog.String("request_id", requestID(r)), slog.Any("error", err))
			done = "signed-out-here"
		}
	}
	s.jar(w, r).clearSession()
	s.jar(w, r).flash(done)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// settingsForm is the settings form with its values.
func settingsForm(image, username, bio, email string) formView {
	return formView{Action: "/settings", Submit: "Update settings", Fields: []field{
		{ID: "image", Name: "image", API: "image", Label: "Profile picture URL", Type: "url", Value: image, Hint: "The https:// address of a picture of you.", MaxLength: 2048},
		usernameField(username),
		{ID: "bio", Name: "bio", API: "bio", Label: "Short bio", Value: bio, Rows: 6, MaxLength: 4096},
		emailField(email),
		{ID: "password", Name: "password", API: "password", Label: "New password", Type: "password", Autocomplete: "new-password", Hint: passwordHint + " Leave it empty to keep the one you have."},
		{ID: "currentPassword", Name: "currentPassword", API: "currentPassword", Label: "Current password", Type: "password", Autocomplete: "current-password", Hint: "Needed to change your email or your password."},
	}}
}

func (s *Site) settingsView(w http.ResponseWriter, r *http.Request, v visitor, f formView) formPage {
	view := formPage{base: s.page(w, r, v, "settings", "Settings"), Heading: "Your settings", Form: f}
	view.Failed = f.Failed()
	return view
}

func (s *Site) settingsPage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	if !mustSignIn(w, r, v) {
		return
	}
	u, version, err := s.api.currentUser(r.Context(), v.token)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := settingsForm(imageOf(u), u.Username, u.Bio, u.Email)
	f.Version, f.Shown = version, shownOf(savedSettings(u))
	s.render(w, r, http.StatusOK, "settings", s.settingsView(w, r, v, f))
}

func imageOf(u user) string {
	if u.Image == nil {
		return ""
	}
	return *u.Image
}

func (s *Site) settings(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	f := r.PostForm
	in := map[string]any{"image": f.Get("image"), "username": f.Get("username"), "bio": f.Get("bio"), "email": f.Get("email")}
	if p := f.Get("password"); p != "" {
		in["password"] = p
	}
	if p := f.Get("currentPassword"); p != "" {
		in["currentPassword"] = p
	}
	typed := func() formView {
		return settingsForm(f.Get("image"), f.Get("username"), f.Get("bio"), f.Get("email"))
	}
	if f.Get("version") == "" {
		// A form that does not say which version of the settings it
		// changes is not sent over whatever is there now: it is shown
		// against the saved settings.
		cur, version, err := s.api.currentUser(r.Context(), v.token)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		form := typed()
		form.Version, form.Shown = version, shownOf(savedSettings(cur))
		form.Problems = changedSettings(&form, cur, f)
		s.render(w, r, http.StatusConflict, "settings", s.settingsView(w, r, v, form))
		return
	}
	u, err := s.api.userCall(r.Context(), http.MethodPut, "/api/user", v.token, http.Header{"If-Match": {f.Get("version")}}, in)
	if cur, version, ok := settingsChangedMeanwhile(err); ok {
		// Saved from another tab or device since this form was opened:
		// nothing was saved. The form keeps what the person typed (but
		// passwords), says what changed, and now names the current
		// version: sending it again saves over the other, knowingly.
		form := typed()
		form.Version, form.Shown = version, shownOf(savedSettings(cur))
		form.Problems = changedSettings(&form, cur, f)
		s.render(w, r, http.StatusConflict, "settings", s.settingsView(w, r, v, form))
		return
	}
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		form := typed()
		form.Version = f.Get("version")
		form.refuse(msgs)
		s.render(w, r, http.StatusUnprocessableEntity, "settings", s.settingsView(w, r, v, form))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	token := u.Token
	if token == "" {
		token = v.token
	}
	s.jar(w, r).signIn(token, u.Username)
	s.jar(w, r).flash("settings-saved")
	http.Redirect(w, r, "/profile/"+url.PathEscape(u.Username), http.StatusSeeOther)
}

func isUnauthorized(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// editorForm is the article form with its values; slug is the article
// edited ("" for a new one).
func editorForm(slug, title, description, body, tags string) formView {
	f := formView{Action: "/editor", Submit: "Publish article", Fields: []field{
		{ID: "title", Name: "title", API: "title", Label: "Title", Type: "text", Value: title, Required: true, Large: true, MaxLength: 256},
		{ID: "description", Name: "description", API: "description", Label: "Description", Hint: "What's this article about? Lists show it under the title.", Type: "text", Value: description, Required: true, MaxLength: 1024},
		{ID: "body", Name: "body", API: "body", Label: "Article", Value: body, Hint: markdownHint, Required: true, Rows: 12},
		{ID: "tags", Name: "tags", API: "tagList tag", Label: "Tags", Value: tags, Hint: tagsHint, Rows: 2, NoSubmit: true},
	}}
	if slug != "" {
		f.Action, f.Submit = "/editor/"+url.PathEscape(slug), "Update article"
	}
	return f
}

func (s *Site) editorView(w http.ResponseWriter, r *http.Request, v visitor, slug, title string, f formView) formPage {
	pageTitle, heading := "New article", "New article"
	if slug != "" {
		pageTitle, heading = "Edit “"+title+"”", "Edit article"
	}
	view := formPage{base: s.page(w, r, v, "editor", pageTitle), Heading: heading, Form: f}
	if slug != "" {
		view.Nav = ""
	}
	view.Failed = f.Failed()
	return view
}

func (s *Site) editorPage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	if !mustSignIn(w, r, v) {
		return
	}
	slug := r.PathValue("slug")
	if slug == "" {
		s.render(w, r, http.StatusOK, "form", s.editorView(w, r, v, "", "", editorForm("", "", "", "", "")))
		return
	}
	a, version, err := s.api.articleVersion(r.Context(), v.token, slug)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if a.Author.Username != v.username {
		s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Only its author may edit this article.")
		return
	}
	f := editorForm(a.Slug, a.Title, a.Description, a.Body, strings.Join(a.TagList, "\n"))
	f.Version, f.Shown = version, shownOf(savedArticle(a))
	s.render(w, r, http.StatusOK, "form", s.editorView(w, r, v, a.Slug, a.Title, f))
}

func (s *Site) publish(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	f := r.PostForm
	slug := r.PathValue("slug")
	in := map[string]any{"title": f.Get("title"), "description": f.Get("description"), "body": f.Get("body"), "tagList": tagsOf(f.Get("tags"))}
	method, path, done := http.MethodPost, "/api/articles", "published"
	if slug != "" {
		method, path, done = http.MethodPut, "/api/articles/"+url.PathEscape(slug), "updated"
	}
	h := keyed(r)
	if slug != "" && f.Get("version") == "" {
		// A form that does not say which version it edits (one shown
		// before versions, or by an api that sent none) is not sent over
		// whatever is there now: it is shown against the saved version.
		cur, version, err := s.api.articleVersion(r.Context(), v.token, slug)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		form := editorForm(slug, f.Get("title"), f.Get("description"), f.Get("body"), f.Get("tags"))
		form.Version, form.Shown = version, shownOf(savedArticle(cur))
		form.Problems = changedFields(&form, cur, f)
		s.render(w, r, http.StatusConflict, "form", s.editorView(w, r, v, slug, f.Get("title"), form))
		return
	}
	if slug != "" {
		h.Set("If-Match", f.Get("version"))
	}
	a, err := s.api.saveArticle(r.Context(), method, path, v.token, h, in)
	if cur, version, ok := changedMeanwhile(err); ok {
		// Saved by someone else (another tab) since this form was opened:
		// nothing was saved. The form keeps what the person typed, says
		// what changed, and now names the current version: sending it
		// again saves over the other, knowingly.
		form := editorForm(slug, f.Get("title"), f.Get("description"), f.Get("body"), f.Get("tags"))
		form.Version, form.Shown = version, shownOf(savedArticle(cur))
		form.Problems = changedFields(&form, cur, f)
		s.render(w, r, http.StatusConflict, "form", s.editorView(w, r, v, slug, f.Get("title"), form))
		return
	}
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		form := editorForm(slug, f.Get("title"), f.Get("description"), f.Get("body"), f.Get("tags"))
		form.Version = f.Get("version")
		form.refuse(msgs)
		s.render(w, r, http.StatusUnprocessableEntity, "form", s.editorView(w, r, v, slug, f.Get("title"), form))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.jar(w, r).flash(done)
	http.Redirect(w, r, "/article/"+url.PathEscape(a.Slug), http.StatusSeeOther)
}

// commentForm is the comment form of the article at slug.
func commentForm(slug, body string) formView {
	return formView{Action: "/article/" + url.PathEscape(slug), Submit: "Post comment", Fields: []field{
		{ID: "comment", Name: "body", API: "body", Label: "Write a comment", Value: body, Required: true, Rows: 3, MaxLength: 16384},
	}}
}

// loadArticle loads an article and its comments as v sees them.
func (s *Site) loadArticle(w http.ResponseWriter, r *http.Request, v visitor, slug string) (articleView, error) {
	view := articleView{base: s.page(w, r, v, "", ""), Comment: commentForm(slug, "")}
	view.After = r.URL.Query().Get("comments")
	err := both(func() (err error) {
		view.A, err = s.api.article(r.Context(), v.token, slug)
		return err
	}, func() (err error) {
		view.Comments, view.Next, err = s.api.comments(r.Context(), v.token, slug, view.After)
		return err
	})
	view.Title = view.A.Title
	if view.A.Description != "" {
		view.Description = view.A.Description
	}
	view.Mine = v.username != "" && view.A.Author.Username == v.username
	view.BodyHTML = Markdown(view.A.Body)
	return view, err
}

func (s *Site) articlePage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	view, err := s.loadArticle(w, r, v, r.PathValue("slug"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "article", view)
}

// act runs a signed-in visitor's form action, then goes to next (or def)
// with the flash message done ("" for none).
func (s *Site) act(w http.ResponseWriter, r *http.Request, def, done string, f func(v visitor) error) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	if err := f(v); err != nil {
		s.fail(w, r, err)
		return
	}
	if done != "" {
		s.jar(w, r).flash(done)
	}
	http.Redirect(w, r, next(r, def), http.StatusSeeOther)
}

// confirmDeleteArticle asks its author before an article is deleted.
func (s *Site) confirmDeleteArticle(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	if !mustSignIn(w, r, v) {
		return
	}
	a, err := s.api.article(r.Context(), v.token, r.PathValue("slug"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if a.Author.Username != v.username {
		s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Only its author may delete this article.")
		return
	}
	here := "/article/" + url.PathEscape(a.Slug)
	s.render(w, r, http.StatusOK, "confirm", confirmView{base: s.page(w, r, v, "", "Delete “"+a.Title+"”?"),
		Heading: "Delete this article?", Quote: a.Title,
		Message: "The article, its comments and its favorites are deleted for good.",
		Action:  here + "/delete", Submit: "Delete article", Cancel: here})
}

func (s *Site) deleteArticle(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	s.act(w, r, "/", "article-deleted", func(v visitor) error {
		r.PostForm.Set("next", "/profile/"+url.PathEscape(v.username))
		_, err := s.api.send(r.Context(), http.MethodDelete, "/api/articles/"+url.PathEscape(slug), nil, v.token, keyed(r), nil, nil)
		return err
	})
}

func (s *Site) favorite(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/unfavorite") {
		method = http.MethodDelete
	}
	s.act(w, r, "/article/"+url.PathEscape(slug), "", func(v visitor) error {
		return s.api.do(r.Context(), method, "/api/articles/"+url.PathEscape(slug)+"/favorite", nil, v.token, nil, nil)
	})
}

func (s *Site) follow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/unfollow") {
		method = http.MethodDelete
	}
	s.act(w, r, "/profile/"+url.PathEscape(name), "", func(v visitor) error {
		return s.api.do(r.Context(), method, "/api/profiles/"+url.PathEscape(name)+"/follow", nil, v.token, nil, nil)
	})
}

// addComment posts a comment. The form posts to the article's own address,
// so a refused comment is shown there (with the draft and the message)
// and that address still opens the article.
func (s *Site) addComment(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	slug := r.PathValue("slug")
	body := r.PostForm.Get("body")
	_, err := s.api.send(r.Context(), http.MethodPost, "/api/articles/"+url.PathEscape(slug)+"/comments", nil, v.token, keyed(r),
		map[string]any{"comment": map[string]any{"body": body}}, nil)
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		view, lerr := s.loadArticle(w, r, v, slug)
		if lerr != nil {
			s.fail(w, r, lerr)
			return
		}
		view.Comment = commentForm(slug, body)
		view.Comment.refuse(msgs)
		view.Failed = true
		s.render(w, r, http.StatusUnprocessableEntity, "article", view)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.jar(w, r).flash("comment-posted")
	http.Redirect(w, r, "/article/"+url.PathEscape(slug)+"#comments", http.StatusSeeOther)
}

// commentID is the {id} of the path, or false (and a 404 page).
func (s *Site) commentID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such comment.")
		return 0, false
	}
	return id, true
}

// confirmDeleteComment asks its author before a comment is deleted.
func (s *Site) confirmDeleteComment(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	id, ok := s.commentID(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	slug := r.PathValue("slug")
	// The page the delete link was on (its "from"): a long thread's later
	// pages hold the comment.
	comments, _, err := s.api.comments(r.Context(), v.token, slug, r.URL.Query().Get("from"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(comments, func(c comment) bool { return c.ID == id })
	if i < 0 {
		s.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such comment.")
		return
	}
	if comments[i].Author.Username != v.username {
		s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Only its author may delete this comment.")
		return
	}
	here := "/article/" + url.PathEscape(slug)
	quote := comments[i].Body
	if utf8.RuneCountInString(quote) > 200 {
		quote = string([]rune(quote)[:200]) + "…"
	}
	s.render(w, r, http.StatusOK, "confirm", confirmView{base: s.page(w, r, v, "", "Delete your comment?"),
		Heading: "Delete your comment?", Quote: quote, Message: "The comment is deleted for good.",
		Action: here + "/comments/" + strconv.FormatInt(id, 10) + "/delete", Submit: "Delete comment", Cancel: here + "#comments"})
}

func (s *Site) deleteComment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.commentID(w, r)
	if !ok {
		return
	}
	slug := r.PathValue("slug")
	s.act(w, r, "/article/"+url.PathEscape(slug)+"#comments", "comment-deleted", func(v visitor) error {
		_, err := s.api.send(r.Context(), http.MethodDelete, "/api/articles/"+url.PathEscape(slug)+"/comments/"+strconv.FormatInt(id, 10), nil, v.token, keyed(r), nil, nil)
		return err
	})
}

func (s *Site) profilePage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	name := r.PathValue("username")
	favorites := strings.HasSuffix(r.URL.Path, "/favorites")
	n := pageNumber(r.URL.Query())
	query := page(n, s.opts.PageSize)
	if favorites {
		query.Set("favorited", name)
	} else {
		query.Set("author", name)
	}
	view := profileView{base: s.page(w, r, v, "", name), Favorites: favorites}
	var list articleList
	err := both(func() (err error) {
		view.P, err = s.api.profile(r.Context(), v.token, name)
		return err
	}, func() (err error) {
		list, err = s.api.articles(r.Context(), v.token, query)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	view.Mine = v.username != "" && v.username == view.P.Username
	if view.Mine {
		view.Nav = "me"
	}
	view.Title = paged(view.P.Username, n)
	label := "Articles by " + view.P.Username
	if favorites {
		view.Title = paged("Articles favorited by "+view.P.Username, n)
		label = "Articles favorited by " + view.P.Username
	}
	view.Description = label + " on Conduit."
	if view.P.Bio != "" {
		view.Description = view.P.Bio
	}
	here := "/profile/" + url.PathEscape(view.P.Username)
	if favorites {
		here += "/favorites"
	}
	href := func(n int) string {
		if n == 1 {
			return here
		}
		return here + "?page=" + strconv.Itoa(n)
	}
	view.List = s.listOf(v, list, n, href, href(n), label)
	s.render(w, r, http.StatusOK, "profile", view)
}

// robots tells crawlers they may read the site (articles, profiles, and
// the sign-in forms people search for), but not the confirmation pages of
// deletions (signed-out visitors only get the sign-in form there anyway).
func (s *Site) robots(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = io.WriteString(w, robotsTxt)
}

const robotsTxt = "User-agent: *\nAllow: /\nDisallow: /*/delete\n"

// changedMeanwhile tells whether err is an edit refused for being made to
// a version that is no longer the current one (412, 409), and gives the
// current article and its version.
func changedMeanwhile(err error) (article, string, bool) {
	var ae *apiError
	if !errors.As(err, &ae) || (ae.Status != http.StatusPreconditionFailed && ae.Status != http.StatusConflict) || len(ae.Current) == 0 {
		return article{}, "", false
	}
	var cur article
	if json.Unmarshal(ae.Current, &cur) != nil {
		return article{}, "", false
	}
	return cur, ae.ETag, true
}

// changedFields is the summary of an edit that met another (see
// resolveConflict), and the form made of it.
func changedFields(f *formView, cur article, sent url.Values) []problem {
	return resolveConflict(f, savedArticle(cur), map[string]string{"title": sent.Get("title"), "description": sent.Get("description"),
		"body": sent.Get("body"), "tags": tagSet(tagsOf(sent.Get("tags")))}, shownValues(sent.Get("shown")),
		"Someone saved this article while you were editing it, so your changes were not saved. They are still below: update the article again to save them over the other version.")
}

// savedArticle is what the editor shows of a, by field, as compared.
func savedArticle(a article) map[string]string {
	return map[string]string{"title": a.Title, "description": a.Description, "body": a.Body, "tags": tagSet(a.TagList)}
}

// settingsChangedMeanwhile tells whether err is a change of the settings
// refused for being made to a version that is no longer the current one
// (412, 409), and gives the current settings and their version.
func settingsChangedMeanwhile(err error) (user, string, bool) {
	var ae *apiError
	if !errors.As(err, &ae) || (ae.Status != http.StatusPreconditionFailed && ae.Status != http.StatusConflict) || len(ae.Current) == 0 {
		return user{}, "", false
	}
	var cur user
	if json.Unmarshal(ae.Current, &cur) != nil || cur.Username == "" {
		return user{}, "", false
	}
	return cur, ae.ETag, true
}

// changedSettings is the summary of a settings change that met another
// (see resolveConflict); passwords are never kept, so it says so when any
// was typed.
func changedSettings(f *formView, cur user, sent url.Values) []problem {
	intro := "Your settings were saved from another tab or device while you were editing them, so your changes were not saved. They are still below: update settings again to save them over the other version."
	if sent.Get("password") != "" || sent.Get("currentPassword") != "" {
		intro += " Passwords are not kept: type them again."
	}
	return resolveConflict(f, savedSettings(cur), map[string]string{"image": sent.Get("image"), "username": sent.Get("username"),
		"bio": sent.Get("bio"), "email": strings.ToLower(strings.TrimSpace(sent.Get("email")))}, shownValues(sent.Get("shown")), intro)
}

// savedSettings is what the settings form shows of u, by field, as
// compared (the email as the api keeps it: lower case).
func savedSettings(u user) map[string]string {
	return map[string]string{"image": imageOf(u), "username": u.Username, "bio": u.Bio, "email": strings.ToLower(u.Email)}
}

func normalizeNewlines(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

// tagSet is tags as a set, comma-separated in order: "b, a" and "a\nb" are
// the same tags.
func tagSet(tags []string) string {
	t := slices.Clone(tags)
	slices.Sort(t)
	return strings.Join(slices.Compact(t), ", ")
}
