package nowcerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrNotFound: a list lookup by id found no row.
var ErrNotFound = errors.New("nowcerts: not found")

// maxRows bounds what one "all pages" read collects.
const maxRows = 100_000

// CertificateHolderPage reads one page of api/CertificateHolderList().
func (c *Client) CertificateHolderPage(ctx context.Context, q Query) (Page[Holder], error) {
	return list[Holder](ctx, c, "CertificateHolderList", q)
}

// HistoricalHolderPage reads one page of api/HistoricalCertificateHolderList().
func (c *Client) HistoricalHolderPage(ctx context.Context, q Query) (Page[HistoricalHolder], error) {
	return list[HistoricalHolder](ctx, c, "HistoricalCertificateHolderList", q)
}

// CertificatePage reads one page of api/CertificatesList().
func (c *Client) CertificatePage(ctx context.Context, q Query) (Page[Certificate], error) {
	return list[Certificate](ctx, c, "CertificatesList", q)
}

// HistoricalHolders returns every historical holder of a certificate (all
// pages of HistoricalCertificateHolderList filtered by certificateId).
func (c *Client) HistoricalHolders(ctx context.Context, certificateID string) ([]HistoricalHolder, error) {
	if !ValidGUID(certificateID) {
		return nil, fmt.Errorf("nowcerts HistoricalCertificateHolderList: certificate id %q is not a GUID", certificateID)
	}
	return all[HistoricalHolder](ctx, c, "HistoricalCertificateHolderList", "certificateId eq "+CanonicalGUID(certificateID))
}

// Certificate returns the CertificatesList row with databaseId id, or an error
// wrapping ErrNotFound.
func (c *Client) Certificate(ctx context.Context, id string) (Certificate, error) {
	return one[Certificate](ctx, c, "CertificatesList", id)
}

// Holder returns the CertificateHolderList row with databaseId id, or an error
// wrapping ErrNotFound.
func (c *Client) Holder(ctx context.Context, id string) (Holder, error) {
	return one[Holder](ctx, c, "CertificateHolderList", id)
}

func one[T any](ctx context.Context, c *Client, endpoint, id string) (T, error) {
	var zero T
	if !ValidGUID(id) {
		return zero, fmt.Errorf("nowcerts %s: id %q is not a GUID", endpoint, id)
	}
	p, err := list[T](ctx, c, endpoint, Query{Filter: "databaseId eq " + CanonicalGUID(id), Top: 2})
	if err != nil {
		return zero, err
	}
	if len(p.Items) == 0 {
		return zero, fmt.Errorf("%w: %s databaseId %s", ErrNotFound, endpoint, id)
	}
	return p.Items[0], nil
}

// all reads every page of endpoint matching filter, in databaseId order.
func all[T any](ctx context.Context, c *Client, endpoint, filter string) ([]T, error) {
	var out []T
	top := c.t.cfg.PageSize
	for skip := 0; ; skip += top {
		p, err := list[T](ctx, c, endpoint, Query{Filter: filter, Top: top, Skip: skip})
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if len(p.Items) < top || (p.Count >= 0 && len(out) >= p.Count) {
			return out, nil
		}
		if len(out) >= maxRows {
			return nil, fmt.Errorf("nowcerts %s: more than %d rows", endpoint, maxRows)
		}
	}
}

// list reads one page: GET api/<endpoint>()?$top&$skip&$orderby&$filter&$count=true.
func list[T any](ctx context.Context, c *Client, endpoint string, q Query) (Page[T], error) {
	if q.Top <= 0 {
		q.Top = c.t.cfg.PageSize
	}
	if q.OrderBy == "" {
		q.OrderBy = "databaseId"
	}
	rep, err := c.t.do(ctx, call{
		op: endpoint, method: http.MethodGet, path: "/api/" + endpoint + "()", rawQuery: odataQuery(q),
		tokens: c.tokens, limit: c.limit,
	})
	if err != nil {
		return Page[T]{}, err
	}
	var body struct {
		Value []T          `json:"value"`
		Count *json.Number `json:"@odata.count"`
	}
	if err := json.Unmarshal(rep.body, &body); err != nil {
		return Page[T]{}, fmt.Errorf("nowcerts %s: read answer: %w", endpoint, err)
	}
	p := Page[T]{Items: body.Value, Count: -1}
	if body.Count != nil {
		if n, err := strconv.Atoi(body.Count.String()); err == nil {
			p.Count = n
		}
	}
	if p.Items == nil {
		p.Items = []T{}
	}
	return p, nil
}

// odataQuery renders q with literal "$" names and %20 for spaces.
func odataQuery(q Query) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	parts := []string{
		"$top=" + strconv.Itoa(q.Top),
		"$skip=" + strconv.Itoa(q.Skip),
		"$orderby=" + esc(q.OrderBy),
		"$count=true",
	}
	if q.Filter != "" {
		parts = append(parts, "$filter="+esc(q.Filter))
	}
	return strings.Join(parts, "&")
}
