package site

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
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
	// viewer is who a list is shown to, shared by its previews.
	viewer struct {
		Me, CSRF, Next string
	}
	pageLink struct {
		N       int
		Href    string
		Current bool
	}
	listView struct {
		Articles []previewView
		Pages    []pageLink
	}
	homeView struct {
		base
		Tab, Tag string
		Tags     []string
		List     listView
	}
	authView struct {
		base
		Register        bool
		Username, Email string
		Errors          []string
	}
	settingsView struct {
		base
		Image, Username, Bio, Email string
		Errors                      []string
	}
	editorView struct {
		base
		Slug, ArticleTitle, Description, Body, Tags string
		Errors                                      []string
	}
	articleView struct {
		base
		A        article
		Mine     bool
		BodyHTML template.HTML
		Comments []comment
		Errors   []string
		Draft    string
		MyImage  *string
	}
	profileView struct {
		base
		P               profile
		Mine, Favorites bool
		List            listView
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
// ten pages around the current one.
func (s *Site) listOf(v visitor, l articleList, current int, href func(n int) string, here string) listView {
	out := listView{Articles: make([]previewView, 0, len(l.Articles))}
	who := &viewer{Me: v.username, CSRF: v.csrf, Next: here}
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

func (s *Site) home(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	q := r.URL.Query()
	view := homeView{base: base{Nav: "home", Me: v.username, CSRF: v.csrf}, Tab: "global", Tag: q.Get("tag")}
	n := pageNumber(q)
	query := page(n, s.opts.PageSize)
	link := url.Values{}
	switch {
	case view.Tag != "":
		view.Tab = "tag"
		query.Set("tag", view.Tag)
		link.Set("tag", view.Tag)
	case q.Get("feed") == "your":
		if !mustSignIn(w, r, v) {
			return
		}
		view.Tab = "your"
		link.Set("feed", "your")
	}
	var list articleList
	err := both(func() (err error) {
		if view.Tab == "your" {
			list, err = s.api.feed(r.Context(), v.token, query)
		} else {
			list, err = s.api.articles(r.Context(), v.token, query)
		}
		return err
	}, func() (err error) {
		view.Tags, err = s.api.tags(r.Context(), v.token)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
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
	view.List = s.listOf(v, list, n, href, href(n))
	s.render(w, r, http.StatusOK, "home", view)
}

// messages are the api's validation messages, or the error's text.
func messages(err error) ([]string, bool) {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden && len(ae.Messages) > 0) {
		if len(ae.Messages) == 0 {
			return []string{"the request was refused"}, true
		}
		return ae.Messages, true
	}
	return nil, false
}

func (s *Site) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "auth", authView{base: s.base(w, r, "login")})
}

func (s *Site) registerPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "auth", authView{base: s.base(w, r, "register"), Register: true})
}

func (s *Site) login(w http.ResponseWriter, r *http.Request) {
	s.authenticate(w, r, false)
}

func (s *Site) register(w http.ResponseWriter, r *http.Request) {
	s.authenticate(w, r, true)
}

// authenticate signs in or up with the form's fields; a refusal shows the
// api's message on the form, with what was typed kept (not the password).
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
	u, err := s.api.userCall(r.Context(), http.MethodPost, path, "", in)
	if msgs, ok := messages(err); ok {
		nav := map[bool]string{true: "register", false: "login"}[register]
		s.render(w, r, http.StatusUnprocessableEntity, "auth", authView{
			base: base{Nav: nav, Me: v.username, CSRF: v.csrf}, Register: register,
			Username: f.Get("username"), Email: f.Get("email"), Errors: msgs,
		})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	signIn(w, s.opts.HTTPS(r), u.Token, u.Username)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.form(w, r); !ok {
		return
	}
	clearSession(w, s.opts.HTTPS(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Site) settingsPage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	if !mustSignIn(w, r, v) {
		return
	}
	u, err := s.api.currentUser(r.Context(), v.token)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	view := settingsView{base: base{Title: "Settings", Nav: "settings", Me: v.username, CSRF: v.csrf}, Username: u.Username, Bio: u.Bio, Email: u.Email}
	if u.Image != nil {
		view.Image = *u.Image
	}
	s.render(w, r, http.StatusOK, "settings", view)
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
	u, err := s.api.userCall(r.Context(), http.MethodPut, "/api/user", v.token, in)
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		s.render(w, r, http.StatusUnprocessableEntity, "settings", settingsView{
			base:  base{Title: "Settings", Nav: "settings", Me: v.username, CSRF: v.csrf},
			Image: f.Get("image"), Username: f.Get("username"), Bio: f.Get("bio"), Email: f.Get("email"), Errors: msgs,
		})
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
	signIn(w, s.opts.HTTPS(r), token, u.Username)
	http.Redirect(w, r, "/profile/"+url.PathEscape(u.Username), http.StatusSeeOther)
}

func isUnauthorized(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

func (s *Site) editorPage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	if !mustSignIn(w, r, v) {
		return
	}
	view := editorView{base: base{Title: "Editor", Nav: "editor", Me: v.username, CSRF: v.csrf}}
	if slug := r.PathValue("slug"); slug != "" {
		a, err := s.api.article(r.Context(), v.token, slug)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if a.Author.Username != v.username {
			s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Only its author may edit this article.")
			return
		}
		view.Slug, view.ArticleTitle, view.Description, view.Body, view.Tags = a.Slug, a.Title, a.Description, a.Body, strings.Join(a.TagList, " ")
	}
	s.render(w, r, http.StatusOK, "editor", view)
}

// tagsOf splits the editor's tag field on commas and spaces.
func tagsOf(field string) []string {
	return append([]string{}, strings.FieldsFunc(field, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
}

func (s *Site) publish(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	f := r.PostForm
	slug := r.PathValue("slug")
	in := map[string]any{"title": f.Get("title"), "description": f.Get("description"), "body": f.Get("body")}
	method, path := http.MethodPost, "/api/articles"
	if slug != "" {
		method, path = http.MethodPut, "/api/articles/"+url.PathEscape(slug)
	} else {
		in["tagList"] = tagsOf(f.Get("tags"))
	}
	a, err := s.api.saveArticle(r.Context(), method, path, v.token, in)
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		s.render(w, r, http.StatusUnprocessableEntity, "editor", editorView{
			base: base{Title: "Editor", Nav: "editor", Me: v.username, CSRF: v.csrf}, Slug: slug,
			ArticleTitle: f.Get("title"), Description: f.Get("description"), Body: f.Get("body"), Tags: f.Get("tags"), Errors: msgs,
		})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/article/"+url.PathEscape(a.Slug), http.StatusSeeOther)
}

// articleView loads an article and its comments as v sees them.
func (s *Site) loadArticle(ctx context.Context, v visitor, slug string) (articleView, error) {
	view := articleView{base: base{Me: v.username, CSRF: v.csrf}}
	err := both(func() (err error) {
		view.A, err = s.api.article(ctx, v.token, slug)
		return err
	}, func() (err error) {
		view.Comments, err = s.api.comments(ctx, v.token, slug)
		return err
	})
	view.Title = view.A.Title
	view.Mine = v.username != "" && view.A.Author.Username == v.username
	view.BodyHTML = Markdown(view.A.Body)
	return view, err
}

func (s *Site) articlePage(w http.ResponseWriter, r *http.Request) {
	v := s.visitorOf(w, r)
	view, err := s.loadArticle(r.Context(), v, r.PathValue("slug"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "article", view)
}

// act runs a signed-in visitor's form action, then goes to next (or def).
func (s *Site) act(w http.ResponseWriter, r *http.Request, def string, f func(v visitor) error) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	if err := f(v); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, next(r, def), http.StatusSeeOther)
}

func (s *Site) deleteArticle(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	s.act(w, r, "/", func(v visitor) error {
		return s.api.do(r.Context(), http.MethodDelete, "/api/articles/"+url.PathEscape(slug), nil, v.token, nil, nil)
	})
}

func (s *Site) favorite(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/unfavorite") {
		method = http.MethodDelete
	}
	s.act(w, r, "/article/"+url.PathEscape(slug), func(v visitor) error {
		return s.api.do(r.Context(), method, "/api/articles/"+url.PathEscape(slug)+"/favorite", nil, v.token, nil, nil)
	})
}

func (s *Site) follow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("username")
	method := http.MethodPost
	if strings.HasSuffix(r.URL.Path, "/unfollow") {
		method = http.MethodDelete
	}
	s.act(w, r, "/profile/"+url.PathEscape(name), func(v visitor) error {
		return s.api.do(r.Context(), method, "/api/profiles/"+url.PathEscape(name)+"/follow", nil, v.token, nil, nil)
	})
}

func (s *Site) addComment(w http.ResponseWriter, r *http.Request) {
	v, ok := s.form(w, r)
	if !ok || !mustSignIn(w, r, v) {
		return
	}
	slug := r.PathValue("slug")
	body := r.PostForm.Get("body")
	err := s.api.do(r.Context(), http.MethodPost, "/api/articles/"+url.PathEscape(slug)+"/comments", nil, v.token,
		map[string]any{"comment": map[string]any{"body": body}}, nil)
	if msgs, ok := messages(err); ok && !isUnauthorized(err) {
		view, lerr := s.loadArticle(r.Context(), v, slug)
		if lerr != nil {
			s.fail(w, r, lerr)
			return
		}
		view.Errors, view.Draft = msgs, body
		s.render(w, r, http.StatusUnprocessableEntity, "article", view)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/article/"+url.PathEscape(slug), http.StatusSeeOther)
}

func (s *Site) deleteComment(w http.ResponseWriter, r *http.Request) {
	slug, id := r.PathValue("slug"), r.PathValue("id")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		s.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such comment.")
		return
	}
	s.act(w, r, "/article/"+url.PathEscape(slug), func(v visitor) error {
		return s.api.do(r.Context(), http.MethodDelete, "/api/articles/"+url.PathEscape(slug)+"/comments/"+id, nil, v.token, nil, nil)
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
	view := profileView{base: base{Title: name, Me: v.username, CSRF: v.csrf}, Favorites: favorites}
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
	view.List = s.listOf(v, list, n, href, href(n))
	s.render(w, r, http.StatusOK, "profile", view)
}
