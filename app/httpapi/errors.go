package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"webstack/app/conduit"
	"webstack/app/observe"
)

// status maps a domain error code to its HTTP status: the only such mapping.
func status(code conduit.Code) int {
	switch code {
	case conduit.CodeInvalid, conduit.CodeConflict:
		return http.StatusUnprocessableEntity
	case conduit.CodeUnauthorized:
		return http.StatusUnauthorized
	case conduit.CodeForbidden:
		return http.StatusForbidden
	case conduit.CodeNotFound:
		return http.StatusNotFound
	case conduit.CodeUnavailable:
		return http.StatusServiceUnavailable
	case conduit.CodeChanged, conduit.CodeBusy:
		return http.StatusConflict
	case codeStale:
		return http.StatusPreconditionFailed
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeTooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// The HTTP layer's own codes: an oversized body, a throttled sign-in or a
// write past its quota.
const (
	codeTooLarge conduit.Code = 100
	codeTooMany  conduit.Code = 101
	codeStale    conduit.Code = 102 // If-Match names a version that is not the current one
)

// writeError answers with the spec's error body. Unexpected errors are
// logged here, once, and shown to the client only as "internal error".
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var code conduit.Code
	msg := "internal error"
	var e *conduit.Error
	var te *throttledError
	var qe *quotaError
	switch {
	case errors.As(err, &te):
		code, msg = codeTooMany, te.Error()
		w.Header().Set("Retry-After", strconv.Itoa(te.seconds()))
	case errors.As(err, &qe):
		code, msg = codeTooMany, qe.Error()
		w.Header().Set("Retry-After", strconv.Itoa(qe.seconds()))
	case errors.As(err, &e):
		code, msg = e.Code, e.Message
	}
	st := status(code)
	if st >= 500 {
		a.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", observe.RequestID(r.Context())), slog.String("route", Route(r)), slog.Any("error", err))
	}
	if st == http.StatusServiceUnavailable || code == conduit.CodeBusy {
		w.Header().Set("Retry-After", "1") // a copy of a keyed request still running: send it again in a moment
	}
	if st == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Token realm="conduit"`)
	}
	writeJSON(w, st, map[string]any{"errors": map[string][]string{"body": {msg}}})
}

func writeJSON(w http.ResponseWriter, st int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(v)
}
