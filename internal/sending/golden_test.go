package sending

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
	"github.com/coiflow/coiflow/internal/store"
)

// loadSQSEvent reads an events/send-worker file (what `sam local invoke -e` takes).
func loadSQSEvent(t *testing.T, name string) events.SQSEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "send-worker", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(ev.Records) == 0 {
		t.Fatalf("%s: no records", name)
	}
	return ev
}

func invokeFile(t *testing.T, h *harness, name string) {
	t.Helper()
	resp, err := h.svc.HandleSQS(context.Background(), loadSQSEvent(t, name))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%s: %+v %v\nlogs:\n%s", name, resp, err, h.logs.String())
	}
}

// TestGoldenEvents runs every events/send-worker file through the worker
// against the sandbox's seed data.
func TestGoldenEvents(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "send-worker", "*.json"))
	if len(files) < 5 {
		t.Fatalf("%d event files", len(files))
	}
	ctx := context.Background()
	t.Run("certificate holder insert is sent once", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		invokeFile(t, h, "nowcerts-certificateholder-insert.json")
		invokeFile(t, h, "nowcerts-certificateholder-insert.json")
		s := h.sends()
		if len(s) != 1 || s[0].CertificateID != nowcertssandbox.SeedCertificateReady || !slices.Equal(s[0].HolderIDs, []string{holderEmail}) ||
			!slices.Equal(s[0].Emails, []string{"coi@northwind-pm.example"}) {
			t.Fatalf("sends = %+v", s)
		}
		page, _ := h.svc.QuerySends(ctx, SendQuery{CertificateID: certReady})
		if len(page.Sends) != 1 || page.Sends[0].RequestID != "c0ffee00-0000-4000-8000-000000000001" || page.Sends[0].EventID != "evt_a9a69c266e60a44583af25aebbc85d22" {
			t.Fatalf("record = %+v", page.Sends)
		}
	})
	t.Run("held certificate waits for approval", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		invokeFile(t, h, "nowcerts-certificateholder-held.json")
		holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
		if len(h.sends()) != 0 || len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonAdditionalInsured, ReasonWaiver}) {
			t.Fatalf("sends %d holds %+v", len(h.sends()), holds)
		}
		if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
			t.Fatalf("approve = %+v, %v", out, err)
		}
		if a := h.sb.Approvals(); len(a) != 1 || !slices.Equal(a[0].IDs, []string{nowcertssandbox.SeedHistoricalPending}) {
			t.Fatalf("approvals = %+v", a)
		}
	})
	t.Run("master certificate update holds the reissue", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		invokeFile(t, h, "nowcerts-mastercertificate-update.json")
		holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
		if len(h.sends()) != 0 || len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonReissue}) ||
			holds[0].HolderEmail != "coi@northwind-pm.example" {
			t.Fatalf("sends %d holds %+v", len(h.sends()), holds)
		}
		if out, err := h.svc.Approve(ctx, holds[0].ID, "jane"); err != nil || out.Status != StatusSent {
			t.Fatalf("approve = %+v, %v", out, err)
		}
		if a := h.sb.Approvals(); len(a) != 1 || !slices.Equal(a[0].IDs, []string{nowcertssandbox.SeedHistoricalReady}) {
			t.Fatalf("approvals = %+v", a)
		}
	})
	t.Run("cowbell certificate on a cancelled policy", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		invokeFile(t, h, "cowbell-policy-status-cancelled.json")
		p, err := h.st.GetPolicyStatus(ctx, "PLM-QGTGSXI")
		if err != nil || p.Status != store.PolicyCancelled {
			t.Fatalf("policy = %+v, %v", p, err)
		}
		invokeFile(t, h, "cowbell-policy-certificate.json")
		holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
		if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonPolicyCancelled, ReasonNoHolder}) || holds[0].Source != "cowbell" {
			t.Fatalf("holds = %+v", holds)
		}
	})
	t.Run("cowbell certificate without holder", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		invokeFile(t, h, "cowbell-policy-certificate.json")
		holds, _ := h.svc.ListHolds(ctx, HoldQuery{})
		if len(holds) != 1 || !slices.Equal(holds[0].Reasons, []string{ReasonNoHolder}) || !strings.HasPrefix(holds[0].CertificateID, "policy:") {
			t.Fatalf("holds = %+v", holds)
		}
	})
}
