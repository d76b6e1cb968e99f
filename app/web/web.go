// Package web is the public tier: the WAF in front of a reverse proxy to the
// api tier, with request ids, X-Forwarded-For, a body size limit and a local
// /healthz.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"webstack/app/observe"
	"webstack/app/waf"
)

// Options configures the handler.
type Options struct {
	// Upstream is the api tier's base URL. Required.
	Upstream *url.URL
	// MaxBodyBytes bounds request bodies; larger ones get 413. Defaults to 1 MiB.
	MaxBodyBytes int64
	// Transport to the upstream. Defaults to a tuned http.Transport.
	Transport http.RoundTripper
}

// Handler is the web tier.
type Handler struct {
	waf   *waf.WAF
	proxy *httputil.ReverseProxy
	opts  Options
	log   *slog.Logger
}

// New builds the web tier's handler.
func New(w *waf.WAF, log *slog.Logger, opts Options) (*Handler, error) {
	if opts.Upstream == nil {
		return nil, errors.New("web: upstream URL is required")
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Transport == nil {
		opts.Transport = &http.Transport{
			Proxy:                 nil,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
		}
	}
	h := &Handler{waf: w, opts: opts, log: log}
	h.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(opts.Upstream)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(observe.RequestIDHeader, pr.In.Header.Get(observe.RequestIDHeader))
		},
		Transport: opts.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.LogAttrs(r.Context(), slog.LevelError, "upstream failed",
				slog.String("request_id", observe.RequestID(r.Context())), slog.Any("error", err))
			writeError(w, http.StatusBadGateway, "upstream unavailable")
		},
	}
	return h, nil
}

// Route names a request's route for metrics: the web tier only knows its own.
func Route(r *http.Request) string {
	if r.URL.Path == "/healthz" {
		return "/healthz"
	}
	return "proxy"
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		return
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.opts.MaxBodyBytes))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	id := observe.RequestID(r.Context())
	v, err := h.waf.Inspect(r, id)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.opts.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "request could not be read")
		return
	}
	if v.Blocked {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "waf blocked",
			slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("rule", v.RuleID), slog.Any("matched", v.Matched))
		writeError(w, v.Status, "request blocked by the web application firewall (request id "+id+")")
		return
	}
	if len(v.Matched) > 0 {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "waf matched",
			slog.String("request_id", id), slog.String("path", r.URL.Path), slog.Any("matched", v.Matched))
	}
	h.proxy.ServeHTTP(w, r)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": map[string][]string{"body": {msg}}})
}
