package httpapi

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Quota is how many of something are allowed in each window.
type Quota struct {
	Limit  int
	Window time.Duration
}

// Quotas bound what one account (one client address, for sign-ups) may
// write, so that nobody can fill the site for everyone else: past one,
// the write is refused with 429 and Retry-After until its window ends.
// They are counted in the database (store.Take), so they hold across api
// instances and under concurrency. A zero Quota takes the default; a
// negative Limit turns it off (load generators).
type Quotas struct {
	// Registrations per client address. Default 20 an hour.
	Registrations Quota
	// Articles per account. Default 30 an hour.
	Articles Quota
	// Comments per account. Default 120 an hour.
	Comments Quota
	// CommentsPerArticle per account on one article; an article's author
	// is never bound on their own. Default 50 a day.
	CommentsPerArticle Quota
}

// DefaultQuotas are Quotas' defaults.
func DefaultQuotas() Quotas { return defaultQuotas }

var defaultQuotas = Quotas{
	Registrations:      Quota{20, time.Hour},
	Articles:           Quota{30, time.Hour},
	Comments:           Quota{120, time.Hour},
	CommentsPerArticle: Quota{50, 24 * time.Hour},
}

func (q Quota) or(def Quota) Quota {
	if q.Limit == 0 {
		return def
	}
	if q.Window == 0 {
		q.Window = def.Window
	}
	return q
}

// quotaError is a write past its quota: 429 with Retry-After.
type quotaError struct {
	what  string
	after time.Duration
}

func (e *quotaError) Error() string {
	return fmt.Sprintf("too many %s: try again in %d seconds", e.what, e.seconds())
}

func (e *quotaError) seconds() int { return max(1, int(math.Ceil(e.after.Seconds()))) }

// take counts one use of q under key, or refuses it.
func (a *API) take(ctx context.Context, q Quota, what, key string) error {
	if q.Limit < 0 {
		return nil
	}
	if keys, ok := a.store.(Keys); ok {
		// A keyed copy that runs again after its first made the article
		// or comment (and answered "try again"): that copy took the quota.
		if made, err := keys.MadeByKey(ctx); err != nil || made {
			return err
		}
	}
	ok, retry, err := a.store.Take(ctx, key, q.Limit, q.Window, a.now())
	switch {
	case err != nil:
		return err
	case !ok:
		return &quotaError{what: what, after: retry}
	}
	return nil
}
