package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"webstack/app/conduit"
)

// page reads limit (1..100, default 20) and offset (0..conduit.MaxOffset,
// default 0).
func page(r *http.Request) (limit, offset int, err error) {
	limit, offset = 20, 0
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > conduit.MaxLimit {
			return 0, 0, conduit.Errorf(conduit.CodeInvalid, "limit must be an integer from 1 to %d", conduit.MaxLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 || offset > conduit.MaxOffset {
			return 0, 0, conduit.Errorf(conduit.CodeInvalid, "offset must be an integer from 0 to %d: narrow the list by author or tag to reach older articles", conduit.MaxOffset)
		}
	}
	return limit, offset, nil
}

func writeArticles(w http.ResponseWriter, list []conduit.Article, total int) {
	out := make([]articleJSON, len(list))
	for i := range list {
		out[i] = toArticle(&list[i], false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"articles": out, "articlesCount": total})
}

func (a *API) listArticles(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := conduit.ArticleFilter{Tag: q.Get("tag"), Author: q.Get("author"), Favorited: q.Get("favorited"), Limit: limit, Offset: offset}
	if len(f.Tag) > conduit.MaxTag*4 || len(f.Author) > conduit.MaxUsername*4 || len(f.Favorited) > conduit.MaxUsername*4 {
		return conduit.Errorf(conduit.CodeInvalid, "filter is too long")
	}
	list, total, err := a.store.ListArticles(r.Context(), me, f)
	if err != nil {
		return err
	}
	writeArticles(w, list, total)
	return nil
}

func (a *API) feed(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	list, total, err := a.store.Feed(r.Context(), me, limit, offset)
	if err != nil {
		return err
	}
	writeArticles(w, list, total)
	return nil
}

// article loads the path's article; an invalid slug is 404 like a missing one.
func (a *API) article(r *http.Request, me *conduit.User) (*conduit.Article, error) {
	slug := r.PathValue("slug")
	if err := conduit.ValidSlug(slug); err != nil {
		return nil, conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	return a.store.ArticleBySlug(r.Context(), me, slug)
}

// ownArticle loads the path's article and checks that me wrote it.
func (a *API) ownArticle(r *http.Request, me *conduit.User) (*conduit.Article, error) {
	art, err := a.article(r, me)
	if err != nil {
		return nil, err
	}
	if art.AuthorID != me.ID {
		return nil, conduit.Errorf(conduit.CodeForbidden, "only the author may change this article")
	}
	return art, nil
}

// writeArticle answers with one article and its version's entity tag.
func writeArticle(w http.ResponseWriter, st int, art *conduit.Article) {
	w.Header().Set("ETag", etag(art.Version))
	writeJSON(w, st, map[string]articleJSON{"article": toArticle(art, true)})
}

// writeStale answers an edit that was made to another version than the
// current one (status 412: If-Match named another; 409: it changed while
// this edit was made) with the current article, so that a client can show
// what changed and keep what its person typed.
func writeStale(w http.ResponseWriter, st int, art *conduit.Article) {
	w.Header().Set("ETag", etag(art.Version))
	msg := "was changed since the version this edit was made to: this edit was not applied (if an earlier copy of it was, the current version shows it); the current version is in article"
	writeJSON(w, st, map[string]any{"errors": map[string][]string{"article": {msg}}, "article": toArticle(art, true)})
}

func (a *API) getArticle(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	art, err := a.article(r, me)
	if err != nil {
		return err
	}
	writeArticle(w, http.StatusOK, art)
	return nil
}

// withUniqueSlug runs save with the title's slug, then with a random suffix
// while the slug is taken.
func withUniqueSlug(title string, save func(slug string) error) error {
	base := conduit.Slugify(title)
	slug := base
	for attempt := 0; ; attempt++ {
		err := save(slug)
		if conduit.CodeOf(err) != conduit.CodeConflict || attempt >= 5 {
			return err
		}
		slug = base + "-" + conduit.SlugSuffix()
	}
}

func (a *API) createArticle(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	var req struct {
		Article *struct {
			Title       string   `json:"title"`
			Description string   `json:"description"`
			Body        string   `json:"body"`
			TagList     []string `json:"tagList"`
		} `json:"article"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	in := req.Article
	if in == nil {
		return conduit.Errorf(conduit.CodeInvalid, "article can't be empty")
	}
	for _, err := range []error{
		conduit.Line("title", in.Title, conduit.MaxTitle),
		conduit.Line("description", in.Description, conduit.MaxDescription),
		conduit.Text("body", in.Body, conduit.MaxBody),
	} {
		if err != nil {
			return err
		}
	}
	tags, err := conduit.NormalizeTags(in.TagList)
	if err != nil {
		return err
	}
	if err := a.take(r.Context(), a.opts.Quotas.Articles, "articles", "articles/"+me.ID); err != nil {
		return err
	}
	now := time.Now().UTC()
	art := &conduit.Article{Title: in.Title, Description: in.Description, Body: in.Body, TagList: tags,
		AuthorID: me.ID, AuthorSince: me.CreatedAt, CreatedAt: now, UpdatedAt: now, Author: me.Profile()}
	err = withUniqueSlug(in.Title, func(slug string) error {
		art.Slug = slug
		return a.store.CreateArticle(r.Context(), art)
	})
	if err != nil {
		return err
	}
	writeArticle(w, http.StatusCreated, art)
	return nil
}

// updateArticle edits the version the request read: the one If-Match
// names when it is given (RFC 9110 §13.1.1: another one is 412, with the
// current article), else the one read here; an edit that meets another
// made meanwhile is 409 with the current article, never a silent merge.
func (a *API) updateArticle(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	art, err := a.ownArticle(r, me)
	if err != nil {
		return err
	}
	if !ifMatch(r, etag(art.Version)) {
		writeStale(w, http.StatusPreconditionFailed, art)
		return nil
	}
	var req struct {
		Article *struct {
			Title       *string `json:"title"`
			Description *string `json:"description"`
			Body        *string `json:"body"`
			// TagList replaces the tags when present: an extension of the
			// RealWorld spec (which takes none on update); clients that
			// leave it out keep the tags.
			TagList *[]string `json:"tagList"`
		} `json:"article"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	in := req.Article
	if in == nil {
		return conduit.Errorf(conduit.CodeInvalid, "article can't be empty")
	}
	if in.TagList != nil {
		tags, err := conduit.NormalizeTags(*in.TagList)
		if err != nil {
			return err
		}
		art.TagList = tags
	}
	if in.Description != nil {
		if err := conduit.Line("description", *in.Description, conduit.MaxDescription); err != nil {
			return err
		}
		art.Description = *in.Description
	}
	if in.Body != nil {
		if err := conduit.Text("body", *in.Body, conduit.MaxBody); err != nil {
			return err
		}
		art.Body = *in.Body
	}
	art.UpdatedAt = time.Now().UTC()
	save := func(slug string) error {
		art.Slug = slug
		return a.store.UpdateArticle(r.Context(), art)
	}
	if in.Title != nil && *in.Title != art.Title {
		if err := conduit.Line("title", *in.Title, conduit.MaxTitle); err != nil {
			return err
		}
		art.Title = *in.Title
		err = withUniqueSlug(art.Title, save)
	} else {
		err = save(art.Slug)
	}
	if conduit.CodeOf(err) == conduit.CodeChanged {
		return a.writeChanged(w, r, me, art.ID)
	}
	if err != nil {
		return err
	}
	writeArticle(w, http.StatusOK, art)
	return nil
}

// writeChanged answers an edit or a deletion that met another edit made
// meanwhile with the current article: 412 when the request named the
// version it was made to (If-Match: it was not current when it was
// written, RFC 9110 §13.1.1), else 409.
func (a *API) writeChanged(w http.ResponseWriter, r *http.Request, me *conduit.User, id string) error {
	cur, err := a.store.ArticleByID(r.Context(), me, id)
	if err != nil {
		return err
	}
	st := http.StatusConflict
	if len(r.Header.Values("If-Match")) > 0 {
		st = http.StatusPreconditionFailed
	}
	writeStale(w, st, cur)
	return nil
}

// deleteArticle deletes the version the request read (If-Match, when given,
// must name the current one): one edited meanwhile stays, answered as an
// edit that met another is.
func (a *API) deleteArticle(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	art, err := a.ownArticle(r, me)
	if err != nil {
		return err
	}
	if !ifMatch(r, etag(art.Version)) {
		writeStale(w, http.StatusPreconditionFailed, art)
		return nil
	}
	err = a.store.DeleteArticle(r.Context(), art)
	if conduit.CodeOf(err) == conduit.CodeChanged {
		return a.writeChanged(w, r, me, art.ID)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) favorite(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	return a.setFavorite(w, r, me, a.store.Favorite)
}

func (a *API) unfavorite(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	return a.setFavorite(w, r, me, a.store.Unfavorite)
}

func (a *API) setFavorite(w http.ResponseWriter, r *http.Request, me *conduit.User, op func(ctx context.Context, user string, art *conduit.Article) error) error {
	art, err := a.article(r, me)
	if err != nil {
		return err
	}
	if err := op(r.Context(), me.ID, art); err != nil {
		return err
	}
	writeArticle(w, http.StatusOK, art)
	return nil
}

// commentSlug is the path's slug; an invalid one is 404 like a missing one.
func commentSlug(r *http.Request) (string, error) {
	slug := r.PathValue("slug")
	if conduit.ValidSlug(slug) != nil {
		return "", conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	return slug, nil
}

// listComments answers a page of an article's comments, oldest first, in
// RealWorld's shape ({"comments": [...]}). Extension: limit (1..100,
// default 100) and after (the cursor of the previous page's end); when
// more follow, a Link header (RFC 8288) gives the next page's URL, rel
// "next". A client that knows neither gets the first 100.
func (a *API) listComments(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	slug, err := commentSlug(r)
	if err != nil {
		return err
	}
	p, err := commentPage(r)
	if err != nil {
		return err
	}
	list, next, err := a.store.Comments(r.Context(), me, slug, p)
	if err != nil {
		return err
	}
	out := make([]commentJSON, len(list))
	for i := range list {
		out[i] = toComment(&list[i])
	}
	if next != nil {
		q := url.Values{"limit": {strconv.Itoa(p.Limit)}, "after": {FormatCommentCursor(*next)}}
		w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", (&url.URL{Path: r.URL.Path}).EscapedPath(), q.Encode()))
	}
	writeJSON(w, http.StatusOK, map[string]any{"comments": out})
	return nil
}

// commentPage reads a comments page's limit (1..100, default 100) and
// after.
func commentPage(r *http.Request) (conduit.CommentPage, error) {
	p := conduit.CommentPage{Limit: conduit.MaxLimit}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > conduit.MaxLimit {
			return p, conduit.Errorf(conduit.CodeInvalid, "limit must be an integer from 1 to %d", conduit.MaxLimit)
		}
		p.Limit = n
	}
	if v := q.Get("after"); v != "" {
		c, err := ParseCommentCursor(v)
		if err != nil {
			return p, err
		}
		p.After = &c
	}
	return p, nil
}

// FormatCommentCursor writes a comments cursor as the after parameter
// carries it: the milliseconds since 1970 of its time, "-", its id.
func FormatCommentCursor(c conduit.CommentCursor) string {
	return strconv.FormatInt(c.At.UnixMilli(), 10) + "-" + strconv.FormatInt(c.ID, 10)
}

// ParseCommentCursor reads an after parameter.
func ParseCommentCursor(v string) (conduit.CommentCursor, error) {
	ms, id, ok := strings.Cut(v, "-")
	t, err1 := strconv.ParseInt(ms, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || t < 0 || n < 1 || len(v) > 40 {
		return conduit.CommentCursor{}, conduit.Errorf(conduit.CodeInvalid, "after must be the cursor a previous page's Link gave")
	}
	return conduit.CommentCursor{At: time.UnixMilli(t).UTC(), ID: n}, nil
}

func (a *API) addComment(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	slug, err := commentSlug(r)
	if err != nil {
		return err
	}
	var req struct {
		Comment *struct {
			Body string `json:"body"`
		} `json:"comment"`
	}
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Comment == nil {
		return conduit.Errorf(conduit.CodeInvalid, "comment can't be empty")
	}
	if err := conduit.Text("body", req.Comment.Body, conduit.MaxComment); err != nil {
		return err
	}
	artID, authorID, err := a.store.ArticleOwner(r.Context(), me, slug)
	if err != nil {
		return err
	}
	if err := a.take(r.Context(), a.opts.Quotas.Comments, "comments", "comments/"+me.ID); err != nil {
		return err
	}
	if authorID != me.ID { // an author can always answer under their own article
		if err := a.take(r.Context(), a.opts.Quotas.CommentsPerArticle, "comments on this article", "comments/"+me.ID+"/"+artID); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	c := &conduit.Comment{AuthorID: me.ID, Body: req.Comment.Body, CreatedAt: now, UpdatedAt: now, Author: me.Profile()}
	if err := a.store.AddComment(r.Context(), artID, c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]commentJSON{"comment": toComment(c)})
	return nil
}

func (a *API) deleteComment(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	slug, err := commentSlug(r)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return conduit.Errorf(conduit.CodeInvalid, "comment id must be a positive integer")
	}
	c, err := a.store.Comment(r.Context(), slug, id)
	if err != nil {
		return err
	}
	if c.AuthorID != me.ID {
		return conduit.Errorf(conduit.CodeForbidden, "only the author may delete this comment")
	}
	if err := a.store.DeleteComment(r.Context(), slug, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) tags(w http.ResponseWriter, r *http.Request, me *conduit.User) error {
	tags, err := a.store.Tags(r.Context(), me)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]string{"tags": tags})
	return nil
}
