package crmsync

import (
	"strings"
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/store"
)

func TestMapCowbellPolicyStatus(t *testing.T) {
	body := `{"meta":{"event":"policy.status"},"data":{"quoteId":"Q1","policyId":"P1","policyNumber":"PLM-1","policyStatus":"CANCELLED",
		"modified":"2026-11-21T14:04:10.000+0000","effectiveDate":"2026-12-01T00:00:00.000+0000","endDate":"2027-12-01T00:00:00.000+0000",
		"accountId":"ACCT-1","accountName":"Red Rock","customerFirstName":"Pat","customerLastName":"Lee","customerEmail":"pat@rr.example",
		"agentEmail":"Sam@QF.example","agentFirstName":"Sam","productType":"P100"}}`
	ev, err := event.Parse(event.SourceCowbell, []byte(body), time.Date(2026, 11, 21, 14, 5, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	p := MapEvent(ev)
	if len(p.Companies) != 1 || len(p.Contacts) != 2 || len(p.Links) != 2 {
		t.Fatalf("plan %+v", p)
	}
	co := p.Companies[0]
	if co.ExternalID != "cowbell:acct-1" {
		t.Fatalf("company id %q", co.ExternalID)
	}
	want := map[string]string{crm.FieldName: "Red Rock", crm.FieldPolicyNumber: "PLM-1", crm.FieldPolicyStatus: "CANCELLED",
		crm.FieldPolicyStart: "2026-12-01", crm.FieldPolicyEnd: "2027-12-01", crm.FieldProductType: "P100", crm.FieldSource: "cowbell"}
	for k, v := range want {
		if co.Fields[k] != v {
			t.Errorf("company %s = %q, want %q", k, co.Fields[k], v)
		}
	}
	if _, ok := co.Fields[crm.FieldStatus]; ok {
		t.Error("a policy event must not set the account's active/inactive status")
	}
	if p.Contacts[0].ExternalID != "cowbell:acct-1:customer" || p.Contacts[0].Fields[crm.FieldEmail] != "pat@rr.example" {
		t.Errorf("customer %+v", p.Contacts[0])
	}
	if p.Contacts[1].ExternalID != AgentExternalID("sam@qf.example") || strings.Contains(p.Contacts[1].ExternalID, "@") {
		t.Errorf("agent %+v", p.Contacts[1])
	}
	if !strings.HasPrefix(p.Stamp, "2026-11-21T14:04:10.000000000Z#evt_") {
		t.Errorf("stamp %q", p.Stamp)
	}
}

func TestMapNowCertsHolderDelete(t *testing.T) {
	ev := event.Event{ID: "evt_1", Source: event.SourceNowCerts, Action: event.ActionDelete, EntityKind: event.KindCertificateHolder,
		EntityID: "abc", Holders: []event.Holder{{ID: "ABC"}}, Insured: &event.Party{ID: "INS"}, OccurredAt: time.Unix(0, 0)}
	p := MapEvent(ev)
	if len(p.Contacts) != 1 || p.Contacts[0].ExternalID != "nowcerts:abc" || p.Contacts[0].Fields[crm.FieldStatus] != crm.StatusInactive {
		t.Fatalf("contacts %+v", p.Contacts)
	}
	if p.Companies[0].ExternalID != "nowcerts:ins" || p.Companies[0].Fields[crm.FieldStatus] != "" {
		t.Fatalf("company %+v", p.Companies[0])
	}
	if len(p.Links) != 1 || p.Links[0] != (Link{Contact: "nowcerts:abc", Company: "nowcerts:ins"}) {
		t.Fatalf("links %+v", p.Links)
	}
}

func TestMapInsuredDeleteDeactivatesTheCompany(t *testing.T) {
	ev := event.Event{ID: "evt_1", Source: event.SourceNowCerts, Action: event.ActionDelete, EntityKind: event.KindInsured,
		EntityID: "ins", Insured: &event.Party{ID: "INS", Name: "Acme"}}
	p := MapEvent(ev)
	if p.Companies[0].Fields[crm.FieldStatus] != crm.StatusInactive {
		t.Fatalf("%+v", p.Companies[0])
	}
}

func TestMapNothing(t *testing.T) {
	if p := MapEvent(event.Event{ID: "x", Source: event.SourceCowbell, EntityKind: event.KindDocument}); !p.Empty() {
		t.Fatalf("%+v", p)
	}
}

func TestMerge(t *testing.T) {
	st := store.CRMState{Fields: map[string]string{"name": "A", "email": "a@x"}, Stamps: map[string]string{"name": "2", "email": "2"}}
	cases := []struct {
		name                  string
		stamp                 string
		fields                map[string]string
		changed, newer, stale bool
		wantName              string
	}{
		{"older", "1", map[string]string{"name": "Z"}, false, false, true, "A"},
		{"same event", "2", map[string]string{"name": "A"}, false, false, false, "A"},
		{"newer same value", "3", map[string]string{"name": "A"}, false, true, false, "A"},
		{"newer new value", "3", map[string]string{"name": "B"}, true, true, false, "B"},
		{"older but new field", "1", map[string]string{"phone": "555", "name": "Z"}, true, true, true, "A"},
	}
	for _, c := range cases {
		m := merge(st, Update{Fields: c.fields}, c.stamp)
		if m.changed != c.changed || m.newer != c.newer || m.stale != c.stale || m.fields["name"] != c.wantName {
			t.Errorf("%s: %+v", c.name, m)
		}
	}
	if st.Fields["name"] != "A" {
		t.Fatal("merge modified its input")
	}
}

func TestHashIsOrderIndependent(t *testing.T) {
	a := hashFields(map[string]string{"a": "1", "b": "2"})
	b := hashFields(map[string]string{"b": "2", "a": "1"})
	c := hashFields(map[string]string{"a": "1", "b": "3"})
	if a != b || a == c {
		t.Fatal("hash")
	}
}

func TestStampsOrderByTimeThenID(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 9, 0, 0, 5, time.FixedZone("x", 3600))
	if !(Stamp(t1, "evt_b") < Stamp(t1.Add(time.Nanosecond), "evt_a")) || !(Stamp(t1, "evt_a") < Stamp(t1, "evt_b")) {
		t.Fatal("stamp order")
	}
	if Stamp(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), "x") >= Stamp(time.Date(2026, 1, 1, 9, 0, 0, 0, time.FixedZone("y", -3600*2)), "x") {
		t.Fatal("stamps must compare in UTC")
	}
}

func TestNoteText(t *testing.T) {
	at := time.Date(2026, 11, 21, 14, 2, 33, 0, time.UTC)
	cases := map[string]string{
		"sent":     "COI for Acme Builders sent by email to GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
		"held":     "COI for Acme Builders held for approval for GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
		"approved": "COI for Acme Builders approved for sending to GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
		"rejected": "COI for Acme Builders rejected (not sent) for GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
		"failed":   "COI for Acme Builders send failed for GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
		"unknown":  "COI for Acme Builders send outcome unknown, check before resending for GC, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC",
	}
	for outcome, want := range cases {
		n := NoteFor("k", jobs.TimelineEntry{Outcome: outcome, CertificateID: "1f3c0d2e-5b6a", HolderName: "GC", InsuredName: "Acme Builders", Channel: "email", At: at, Detail: "why"})
		first := strings.SplitN(n.Body, "\n", 2)[0]
		if first != want {
			t.Errorf("%s: %q\nwant %q", outcome, first, want)
		}
		if !strings.Contains(n.Body, "Detail: why") || !strings.Contains(n.Body, "Certificate 1f3c0d2e-5b6a") || !n.At.Equal(at) {
			t.Errorf("%s: body %q", outcome, n.Body)
		}
	}
}
