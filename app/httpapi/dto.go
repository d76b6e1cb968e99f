package httpapi

import (
	"time"

	"webstack/app/conduit"
)

// Response shapes of the spec (backend-api-response-format.md).

type userJSON struct {
	Email    string  `json:"email"`
	Token    string  `json:"token"`
	Username string  `json:"username"`
	Bio      string  `json:"bio"`
	Image    *string `json:"image"`
}

type profileJSON struct {
	Username  string  `json:"username"`
	Bio       string  `json:"bio"`
	Image     *string `json:"image"`
	Following bool    `json:"following"`
}

type articleJSON struct {
	Slug           string      `json:"slug"`
	Title          string      `json:"title"`
	Description    string      `json:"description"`
	Body           *string     `json:"body,omitempty"`
	TagList        []string    `json:"tagList"`
	CreatedAt      string      `json:"createdAt"`
	UpdatedAt      string      `json:"updatedAt"`
	Favorited      bool        `json:"favorited"`
	FavoritesCount int         `json:"favoritesCount"`
	Author         profileJSON `json:"author"`
}

type commentJSON struct {
	ID        int64       `json:"id"`
	CreatedAt string      `json:"createdAt"`
	UpdatedAt string      `json:"updatedAt"`
	Body      string      `json:"body"`
	Author    profileJSON `json:"author"`
}

// timestamp is ISO 8601 in UTC with milliseconds, as the spec shows.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func image(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toProfile(p conduit.Profile) profileJSON {
	return profileJSON{Username: p.Username, Bio: p.Bio, Image: image(p.Image), Following: p.Following}
}

func toArticle(a *conduit.Article, withBody bool) articleJSON {
	out := articleJSON{Slug: a.Slug, Title: a.Title, Description: a.Description, TagList: a.TagList,
		CreatedAt: timestamp(a.CreatedAt), UpdatedAt: timestamp(a.UpdatedAt),
		Favorited: a.Favorited, FavoritesCount: a.FavoritesCount, Author: toProfile(a.Author)}
	if out.TagList == nil {
		out.TagList = []string{}
	}
	if withBody {
		body := a.Body
		out.Body = &body
	}
	return out
}

func toComment(c *conduit.Comment) commentJSON {
	return commentJSON{ID: c.ID, CreatedAt: timestamp(c.CreatedAt), UpdatedAt: timestamp(c.UpdatedAt), Body: c.Body, Author: toProfile(c.Author)}
}
