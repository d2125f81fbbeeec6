package staffapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
)

// The approvals and exceptions page, GET /app: one server-rendered HTML shell
// (html/template, embedded; no build step) with its style and script inline
// under a per-response CSP nonce. The shell holds no data and is served without
// authentication (a browser navigating to /app cannot send a bearer token); the
// script asks for the token, keeps it in sessionStorage and loads everything
// from the JSON API with "Authorization: Bearer". In AWS the token is the JWT
// the identity provider issued: pasted into the page, or passed as
// /app#token=<JWT> (a fragment never reaches a server; the script removes it
// from the address bar).

//go:embed page/app.html page/app.js page/app.css
var pageFiles embed.FS

// pageCSP allows only the nonce'd inline script and style, fetches to the same
// origin, and nothing else (no frames, no forms posting anywhere, no plugins).
const pageCSP = "default-src 'none'; script-src 'nonce-%[1]s'; style-src 'nonce-%[1]s'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page is the parsed shell and its assets.
type page struct {
	tmpl   *template.Template
	script template.JS
	style  template.CSS
}

// pageData is what the shell template sees.
type pageData struct {
	Nonce  string
	Script template.JS
	Style  template.CSS
}

func loadPage() (*page, error) {
	tmpl, err := template.ParseFS(pageFiles, "page/app.html")
	if err != nil {
		return nil, fmt.Errorf("staffapi: page template: %w", err)
	}
	js, err := pageFiles.ReadFile("page/app.js")
	if err != nil {
		return nil, fmt.Errorf("staffapi: page script: %w", err)
	}
	css, err := pageFiles.ReadFile("page/app.css")
	if err != nil {
		return nil, fmt.Errorf("staffapi: page style: %w", err)
	}
	// The script and style are this package's own embedded files, not data.
	return &page{tmpl: tmpl, script: template.JS(js), style: template.CSS(css)}, nil
}

// servePage serves GET /app. It takes no query parameters (a token must not
// travel in a query string, where logs would keep it).
func (s *Server) servePage(_ context.Context, r *request) (response, error) {
	if len(r.Query) > 0 {
		return response{}, errorf(http.StatusBadRequest, "the page takes no query parameters (pass a token as /app#token=...)")
	}
	var n [18]byte
	if _, err := rand.Read(n[:]); err != nil {
		return response{}, fmt.Errorf("page nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(n[:])
	var buf bytes.Buffer
	if err := s.page.tmpl.Execute(&buf, pageData{Nonce: nonce, Script: s.page.script, Style: s.page.style}); err != nil {
		return response{}, fmt.Errorf("render page: %w", err)
	}
	return response{
		Status: http.StatusOK,
		Header: map[string]string{
			"Content-Type":               "text/html; charset=utf-8",
			"Content-Security-Policy":    fmt.Sprintf(pageCSP, nonce),
			"Referrer-Policy":            "no-referrer",
			"X-Frame-Options":            "DENY",
			"Cross-Origin-Opener-Policy": "same-origin",
		},
		Body: buf.Bytes(),
	}, nil
}
