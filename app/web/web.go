// Package web is the public tier: the WAF in front of the Conduit web
// application (package site) and of a reverse proxy to the api tier for
// /api/, with request ids, X-Forwarded-For, a body size limit and a local
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
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"time"

	"webstack/app/httpapi"
	"webstack/app/observe"
	"webstack/app/site"
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
	// TrustedProxies are the peers (the load balancer) whose
	// X-Forwarded-Proto is believed. Defaults to none.
	TrustedProxies []netip.Prefix
	// InspectionSlots is how many WAF inspections run at once. Defaults
	// to 2 per core the process may use.
	InspectionSlots int
}

// Handler is the web tier.
type Handler struct {
	waf        *waf.WAF
	proxy      *httputil.ReverseProxy
	site       *site.Site
	opts       Options
	log        *slog.Logger
	inspecting *inspections
	bodies     bodyBudget
	requests   inFlight
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
	st, err := site.New(site.Options{Upstream: opts.Upstream, Transport: opts.Transport, HTTPS: opts.https, Log: log})
	if err != nil {
		return nil, err
	}
	if opts.InspectionSlots <= 0 {
		opts.InspectionSlots = 2 * runtime.GOMAXPROCS(0)
	}
	h := &Handler{waf: w, opts: opts, log: log, site: st, inspecting: newInspections(2, opts.InspectionSlots)}
	h.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(opts.Upstream)
			// X-Forwarded-For: the chain a trusted load balancer sent, plus
			// its address; from anyone else only the peer's (a client's
			// own header is not passed on).
			prior := pr.In.Header.Values("X-Forwarded-For")
			pr.SetXForwarded()
			if opts.trusted(pr.In) && len(prior) > 0 {
				pr.Out.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+pr.Out.Header.Get("X-Forwarded-For"))
			}
			if opts.https(pr.In) {
				pr.Out.Header.Set("X-Forwarded-Proto", "https")
			}
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(observe.RequestIDHeader, observe.RequestID(pr.In.Context()))
		},
		Transport: opts.Transport,
		// The api's own request id and HSTS headers would repeat the ones
		// the web tier has already set.
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(observe.RequestIDHeader)
			resp.Header.Del("Strict-Transport-Security") // this tier sets its own, once
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if observe.ClientGone(r, err) {
				return // counted by the middleware; nobody is there to answer
			}
			log.LogAttrs(r.Context(), slog.LevelError, "upstream failed",
				slog.String("request_id", observe.RequestID(r.Context())), slog.Any("error", err))
			writeError(w, http.StatusBadGateway, "upstream unavailable")
		},
	}
	return h, nil
}

// https reports whether the visitor reached the site over HTTPS (this
// server's TLS, or the load balancer's X-Forwarded-Proto from a trusted
// peer).
func (o Options) https(r *http.Request) bool { return observe.HTTPS(r, o.TrustedProxies) }

// trusted reports whether r's peer is the load balancer.
func (o Options) trusted(r *http.Request) bool { return observe.FromTrustedProxy(r, o.TrustedProxies) }

// Route names a request's route for metrics and logs: /healthz, the api
// proxy, or the site's page pattern.
func (h *Handler) Route(r *http.Request) string {
	switch {
	case r.URL.Path == "/healthz":
		return "/healthz"
	case isAPI(r):
		return "proxy"
	}
	return h.site.Route(r)
}

func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api"
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.https(r) {
		w.Header().Set("Strict-Transport-Security", httpapi.HSTS) // every answer, own or proxied
	}
	if r.URL.Path == "/healthz" {
		// Healthy is making progress: requests waiting for an inspection
		// and none ending for stuckAfter (a starved or wedged instance)
		// fail the load balancer's check, and the instance is replaced. A
		// busy instance passes: a load must not replace every instance.
		if h.inspecting.stuck(time.Now()) {
			writeError(w, http.StatusServiceUnavailable, "no inspection has ended for a while with requests waiting: this instance cannot serve")
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		return
	}
	if st, msg := h.refusal(r); st != 0 {
		h.refuse(w, r, st, msg)
		return
	}
	// What one address has in the tier at once, whatever it is doing (a
	// slow body, a slow read, an api call): bounded also behind the load
	// balancer, where every connection is its.
	leave, ok := h.requests.enter(observe.Client(r.Context()), MaxRequestsPerClient)
	if !ok {
		w.Header().Set("Retry-After", "1")
		h.refuse(w, r, http.StatusTooManyRequests, "too many requests from your address at once: try again in a second")
		return
	}
	defer leave()
	// The body first, before any slot: a slow one holds its connection and
	// its bytes, nothing shared.
	done, st, msg := h.readBody(w, r)
	defer done()
	if st != 0 {
		// (readBody also holds what the WAF inspects to MaxInspected.)
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		h.refuse(w, r, st, msg)
		return
	}
	release, ok := h.inspecting.acquire(r.Context(), observe.Client(r.Context()))
	if !ok {
		w.Header().Set("Retry-After", "1")
		h.refuse(w, r, http.StatusServiceUnavailable, "too many requests are being inspected: try again in a second")
		return
	}
	id := observe.RequestID(r.Context())
	v, err := h.waf.Inspect(r, id)
	release() // the slot covers the inspection alone, not the upstream nor the answer's write
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
		if isAPI(r) {
			writeError(w, v.Status, "request blocked by the web application firewall (request id "+id+")")
		} else {
			h.site.Blocked(w, r, v.Status)
		}
		return
	}
	if len(v.Matched) > 0 {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "waf matched",
			slog.String("request_id", id), slog.String("path", r.URL.Path), slog.Any("matched", v.Matched))
	}
	if isAPI(r) {
		h.proxy.ServeHTTP(w, r)
		return
	}
	h.site.ServeHTTP(w, r)
}

// refuse answers a request refused before inspection: JSON under /api/,
// else a page (the connection is closed: what is left of the request is
// not read).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Connection", "close")
	if isAPI(r) {
		writeError(w, status, msg)
		return
	}
	h.site.Refused(w, r, status, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Security-Policy", httpapi.ContentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": map[string][]string{"body": {msg}}})
}
