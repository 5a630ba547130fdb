package server

// Browsers: a web page must not be able to run a query on this server (CSRF), whatever the
// page's site. Clients (curl, clickhouse-go, clickhouse-connect, Grafana's backend) send no
// Origin nor Sec-Fetch-Site header; a browser sends Origin with every cross-origin request and
// Sec-Fetch-Site with every request. The server grants no CORS header, so a page never reads
// an answer; these checks make sure it cannot cause one either.

import (
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// browserCheck refuses a request a browser sent on a page's behalf: a CORS preflight
// (OPTIONS), an Origin not in the allow-list (the literal "null" of sandboxed pages and
// files included), or a Sec-Fetch-Site other than same-origin or none (a page of another
// site, or of the same site on another port, such as http://127.0.0.1:8080 for this server).
func (s *Server) browserCheck(r *http.Request) error {
	if r.Method == http.MethodOptions {
		return errors.New("no CORS: this server answers no preflight request and grants no cross-origin access")
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if slices.Contains(s.cfg.AllowedOrigins, origin) {
			return nil
		}
		return errors.New("requests from web pages are refused (Origin " + origin + " is not allowed)")
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "none", "same-origin":
	default:
		return errors.New("requests from web pages are refused (Sec-Fetch-Site: " + site + ")")
	}
	return nil
}

// simplePost reports whether r is a POST a browser page may send to any site without a
// preflight: a form or plain-text body, or none.
func simplePost(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}
