package httpapi

import (
	"net/http"
	"strconv"
	"strings"
)

// etag is the entity tag of a version of an article or an account: the
// version, quoted. It names what an edit is made to (If-Match), not a
// byte-for-byte body: two people see an article's favorited flag apiece.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch evaluates the request's If-Match against the current entity tag
// (RFC 9110 §13.1.1): true when there is none, when it is "*", or when one
// of the listed tags is current by the strong comparison (a weak tag,
// W/"…", never matches).
func ifMatch(r *http.Request, current string) bool {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || tag == current {
				return true
			}
		}
	}
	return false
}
