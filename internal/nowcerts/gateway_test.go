package nowcerts_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// TestGatewayAnswersToSendAreUnknown: a 504 or a 502 answered by a gateway for
// SendCertificate does not say whether NowCerts carried it out: the send
// ends ErrOutcomeUnknown after one call, never repeated. 429, 500 and 503 are
// still retried (TestRetriesHonourRetryAfter, TestRetriesAreBounded).
func TestGatewayAnswersToSendAreUnknown(t *testing.T) {
	for _, status := range []int{502, 504} {
		h := newHarness(t, nowcertssandbox.Options{})
		if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Status: status, Count: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := h.client.SendCertificate(context.Background(), sendReq())
		if !errors.Is(err, nowcerts.ErrOutcomeUnknown) || errors.Is(err, nowcerts.ErrUnavailable) {
			t.Fatalf("HTTP %d: err = %v, want ErrOutcomeUnknown", status, err)
		}
		if n := len(h.sb.CallsTo("SendCertificate")); n != 1 {
			t.Fatalf("HTTP %d: %d SendCertificate calls, want 1", status, n)
		}
	}
}

// TestGatewayTimeoutAfterTheSendIsNotRepeated: the sandbox carries the send
// out, then its gateway gives up waiting and answers 504: one send, not two.
func TestGatewayTimeoutAfterTheSendIsNotRepeated(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{MaxHang: 50 * time.Millisecond})
	if err := h.sb.AddFault(nowcertssandbox.Fault{Path: "SendCertificate", Timeout: true, Sent: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.SendCertificate(context.Background(), sendReq())
	if !errors.Is(err, nowcerts.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "504") {
		t.Fatalf("err = %v, want ErrOutcomeUnknown after a 504", err)
	}
	calls := h.sb.CallsTo("SendCertificate")
	if len(calls) != 1 || calls[0].Status != 504 {
		t.Fatalf("calls = %+v, want one answered 504", calls)
	}
	if sends := h.sb.Sends(); len(sends) != 1 || sends[0].Answered {
		t.Fatalf("sandbox sends = %+v, want one unanswered", sends)
	}
}

// TestGatewayAnswersToIdempotentCallsAreRetried: Approve and the lists are
// safe to repeat: a 504 or 502 is retried like any 5xx.
func TestGatewayAnswersToIdempotentCallsAreRetried(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	for _, f := range []nowcertssandbox.Fault{
		{Path: "Approve", Status: 504, Count: 1},
		{Path: "Approve", Status: 502, Count: 1},
		{Path: "HistoricalCertificateHolderList", Status: 504, Count: 1},
	} {
		if err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.client.Approve(context.Background(), []string{nowcertssandbox.SeedHistoricalPending}); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	if n := len(h.sb.CallsTo("Approve")); n != 3 {
		t.Fatalf("%d Approve calls, want 3 (504, 502, 200)", n)
	}
	rows, err := h.client.HistoricalHolders(context.Background(), nowcertssandbox.SeedCertificatePending)
	if err != nil || len(rows) != 1 {
		t.Fatalf("HistoricalHolders = %+v, %v", rows, err)
	}
}

func TestValidGUID(t *testing.T) {
	for id, want := range map[string]bool{
		"3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01":   true,
		"3F2B6C1E-8A4D-4E0F-9B1A-2C5D7E8F9A01":   true,
		" 3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01 ": true,
		"3f2b6c1e8a4d4e0f9b1a2c5d7e8f9a01":       true,
		"3F2B6C1E8A4D4E0F9B1A2C5D7E8F9A01":       true,
		"3f2b6c1e-8a4d4e0f-9b1a-2c5d7e8f9a01":    false, // dashes in some places only
		"{3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01}": false,
		"3f2b6c1e8a4d4e0f9b1a2c5d7e8f9a0":        false,
		"3f2b6c1e8a4d4e0f9b1a2c5d7e8f9a0g":       false,
		"cb-policy-1":                            false,
		"":                                       false,
	} {
		if got := nowcerts.ValidGUID(id); got != want {
			t.Errorf("ValidGUID(%q) = %v, want %v", id, got, want)
		}
	}
	for in, want := range map[string]string{
		"3F2B6C1E8A4D4E0F9B1A2C5D7E8F9A01":       "3F2B6C1E-8A4D-4E0F-9B1A-2C5D7E8F9A01",
		" 3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01 ": "3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01",
		"not-a-guid":                             "not-a-guid",
	} {
		if got := nowcerts.CanonicalGUID(in); got != want {
			t.Errorf("CanonicalGUID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDashlessIDsGoOutDashed: ids without dashes are accepted and sent in the
// dashed form, which the sandbox (like OData filters) requires.
func TestDashlessIDsGoOutDashed(t *testing.T) {
	h := newHarness(t, nowcertssandbox.Options{})
	undash := func(s string) string { return strings.ReplaceAll(s, "-", "") }
	req := sendReq()
	req.CertificateID, req.InsuredID = undash(req.CertificateID), undash(req.InsuredID)
	req.HolderIDs = []string{undash(req.HolderIDs[0])}
	if _, err := h.client.SendCertificate(context.Background(), req); err != nil {
		t.Fatalf("SendCertificate: %v", err)
	}
	body := h.sb.CallsTo("SendCertificate")[0].Body
	for _, id := range []string{nowcertssandbox.SeedCertificateReady, nowcertssandbox.SeedHolderEmail, nowcertssandbox.SeedInsuredAcme} {
		if !strings.Contains(body, `"`+id+`"`) {
			t.Fatalf("body lacks %s: %s", id, body)
		}
	}
	if _, err := h.client.Approve(context.Background(), []string{undash(nowcertssandbox.SeedHistoricalPending)}); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	rows, err := h.client.HistoricalHolders(context.Background(), undash(nowcertssandbox.SeedCertificatePending))
	if err != nil || len(rows) != 1 {
		t.Fatalf("HistoricalHolders = %+v, %v", rows, err)
	}
	if c, err := h.client.Certificate(context.Background(), strings.ToUpper(undash(nowcertssandbox.SeedCertificateReady))); err != nil ||
		!nowcerts.SameID(c.DatabaseID, nowcertssandbox.SeedCertificateReady) {
		t.Fatalf("Certificate = %+v, %v", c, err)
	}
}
