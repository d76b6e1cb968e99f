package web

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
)

// ParseCertificateSecret reads a web certificate secret: JSON
// {"certificate": PEM chain, "privateKey": PEM}.
func ParseCertificateSecret(v []byte) (tls.Certificate, error) {
	var s struct {
		Certificate string `json:"certificate"`
		PrivateKey  string `json:"privateKey"`
	}
	if err := json.Unmarshal(v, &s); err != nil || s.Certificate == "" || s.PrivateKey == "" {
		return tls.Certificate{}, fmt.Errorf(`web certificate secret: want JSON {"certificate": "<PEM chain>", "privateKey": "<PEM>"}`)
	}
	cert, err := tls.X509KeyPair([]byte(s.Certificate), []byte(s.PrivateKey))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("web certificate secret: %w", err)
	}
	return cert, nil
}

// RedirectToHTTPS answers plain HTTP with a permanent redirect to the same
// URL over HTTPS on the port of httpsAddr (the TLS listener), and /healthz
// with 200 for health checks.
func RedirectToHTTPS(httpsAddr string) http.Handler {
	_, port, _ := net.SplitHostPort(httpsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
			return
		}
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if host == "" {
			http.Error(w, "a Host header is required", http.StatusBadRequest)
			return
		}
		if port != "443" && port != "" {
			host = net.JoinHostPort(host, port)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
