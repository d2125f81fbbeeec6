package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ids used by the NowCerts fixtures (some fixtures spell them in upper case).
const (
	ncHolderID  = "8d0f5c3e-2b1a-4c6d-9e8f-0a1b2c3d4e5f"
	ncCertID    = "95c5a8e2-7f3d-4b1c-a2e9-6d4f8b0c1e3a"
	ncInsuredID = "3f2e1d0c-b9a8-4765-8321-0fedcba98765"
	ncAgencyID  = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
)

var received = time.Date(2024, 3, 5, 6, 16, 0, 0, time.UTC)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, src Source, path string) Event {
	t.Helper()
	body := readFixture(t, path)
	ev, err := Parse(src, body, received)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	if ev.ID == "" || ev.ID != IDFor(ev.IdempotencyKey) {
		t.Errorf("%s: ID %q does not derive from key %q", path, ev.ID, ev.IdempotencyKey)
	}
	if ev.Source != src || !ev.ReceivedAt.Equal(received) || !bytes.Equal(ev.Raw, RedactBody(body)) {
		t.Errorf("%s: source/receivedAt/raw not set by Parse: %q %v %d bytes", path, ev.Source, ev.ReceivedAt, len(ev.Raw))
	}
	return ev
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestParseNowCertsShapes covers every entity and action in four plausible
// payload shapes: flat PascalCase (the seed handler's EventType/EntityId/Timestamp),
// camelCase with a glued past-tense type, data nested under "data" with the id
// only inside it, and separate entity + action fields with the data under the
// entity's own name.
func TestParseNowCertsShapes(t *testing.T) {
	shapes := []struct {
		name       string
		occurredAt string // the instant each shape's timestamp field names
		tsKey      string // the timestamp as given, as it must appear in the key
		agency     string
	}{
		{"flat_pascal", "2024-03-05T06:15:30.1234567Z", "2024-03-05T10:15:30.1234567+04:00", ncAgencyID},
		{"camel", "2024-03-05T06:15:30Z", "2024-03-05T06:15:30Z", ncAgencyID},
		{"nested_data", "2024-03-05T06:15:30Z", "2024-03-05T10:15:30+04:00", ncAgencyID},
		{"entity_action", "2024-03-05T06:15:30Z", "2024-03-05T06:15:30.000+0000", ""},
	}
	entities := []struct {
		short, typeName string
		kind            Kind
		id              string
	}{
		{"holder", "CertificateHolder", KindCertificateHolder, ncHolderID},
		{"master", "MasterCertificate", KindMasterCertificate, ncCertID},
	}
	actions := []struct {
		short, typeName string
		action          Action
	}{
		{"insert", "Insert", ActionInsert},
		{"update", "Update", ActionUpdate},
		{"delete", "Delete", ActionDelete},
	}
	for _, sh := range shapes {
		for _, en := range entities {
			for _, ac := range actions {
				file := "nowcerts/" + sh.name + "_" + en.short + "_" + ac.short + ".json"
				t.Run(file, func(t *testing.T) {
					ev := mustParse(t, SourceNowCerts, file)
					wantType := en.typeName + "." + ac.typeName
					if ev.Type != wantType || ev.EntityKind != en.kind || ev.Action != ac.action {
						t.Fatalf("type/kind/action = %q/%q/%q, want %q/%q/%q", ev.Type, ev.EntityKind, ev.Action, wantType, en.kind, ac.action)
					}
					if ev.EntityID != en.id {
						t.Errorf("EntityID = %q, want %q", ev.EntityID, en.id)
					}
					if ev.AgencyID != sh.agency {
						t.Errorf("AgencyID = %q, want %q", ev.AgencyID, sh.agency)
					}
					if want := mustTime(t, sh.occurredAt); !ev.OccurredAt.Equal(want) || ev.OccurredAt.Location() != time.UTC {
						t.Errorf("OccurredAt = %v, want %v (UTC)", ev.OccurredAt, want)
					}
					if want := Key("nowcerts", wantType, en.id, sh.tsKey); ev.IdempotencyKey != want {
						t.Errorf("IdempotencyKey = %q, want %q", ev.IdempotencyKey, want)
					}
					checkNowCertsEntity(t, ev, en.kind, ac.action)
				})
			}
		}
	}
}

// checkNowCertsEntity checks the entities the fixtures carry (full records for
// insert/update, the id (and a holder's certificate id) for delete).
func checkNowCertsEntity(t *testing.T, ev Event, kind Kind, action Action) {
	t.Helper()
	full := action != ActionDelete
	const revision = "2024-03-05T06:15:29.877Z" // the fixtures' changeDate, in UTC
	switch kind {
	case KindCertificateHolder:
		if len(ev.Holders) != 1 {
			t.Fatalf("Holders = %+v, want one", ev.Holders)
		}
		h := ev.Holders[0]
		if h.ID != ncHolderID {
			t.Errorf("holder ID = %q", h.ID)
		}
		if ev.Certificate == nil || ev.Certificate.ID != ncCertID {
			t.Fatalf("Certificate = %+v, want id %s", ev.Certificate, ncCertID)
		}
		if !full {
			if h.Email != "" || ev.Insured != nil {
				t.Errorf("delete carries data it was not given: %+v %+v", h, ev.Insured)
			}
			return
		}
		want := Holder{
			ID: ncHolderID, Name: "Acme Builders LLC", Email: "certs@acmebuilders.example",
			Fax: "(217) 555-0101", Phone: "(217) 555-0100",
			Address:   "100 Main St, Suite 200, Springfield, IL 62701",
			ChangedAt: "2024-03-05T10:15:29.877+04:00",
		}
		if h != want {
			t.Errorf("holder = %+v\nwant     %+v", h, want)
		}
		if c := ev.Certificate; c.Name != "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25) (03/05/2024)" || c.InsuredID != ncInsuredID {
			t.Errorf("certificate = %+v", c)
		}
		// The holder's change date is not the certificate's revision.
		if r := ev.Certificate.Revision; !strings.HasPrefix(r, "h:") || len(r) != 18 {
			t.Errorf("holder event certificate revision = %q, want a content hash", r)
		}
	case KindMasterCertificate:
		c := ev.Certificate
		if c == nil || c.ID != ncCertID {
			t.Fatalf("Certificate = %+v, want id %s", c, ncCertID)
		}
		if len(ev.Holders) != 0 {
			t.Errorf("Holders = %+v, want none", ev.Holders)
		}
		if !full {
			if !strings.HasPrefix(c.Revision, "h:") || c.AdditionalInsured || c.InsuredID != "" {
				t.Errorf("delete certificate = %+v", c)
			}
			return
		}
		if c.Name != "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)" || c.InsuredID != ncInsuredID ||
			!c.AdditionalInsured || !c.WaiverOfSubrogation || c.SpecialWording || c.PendingApproval ||
			!strings.HasPrefix(c.Description, "Certificate holder is additional insured") || c.Revision != revision {
			t.Errorf("certificate = %+v", c)
		}
	}
	if full {
		want := Party{ID: ncInsuredID, Name: "Red Rock Test Company", Email: "owner@redrock.example"}
		if ev.Insured == nil || *ev.Insured != want {
			t.Errorf("Insured = %+v, want %+v", ev.Insured, want)
		}
	}
}

func TestParseNowCertsExtraShapes(t *testing.T) {
	t.Run("array wrapped, screaming snake case, braced GUID, /Date()/", func(t *testing.T) {
		ev := mustParse(t, SourceNowCerts, "nowcerts/extra_array_wrapped_screaming.json")
		if ev.Type != "CertificateHolder.Delete" || ev.EntityID != ncHolderID {
			t.Errorf("type/id = %q/%q", ev.Type, ev.EntityID)
		}
		if want := time.Date(2024, 3, 5, 10, 15, 30, 123e6, time.UTC); !ev.OccurredAt.Equal(want) {
			t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
		}
		if want := Key("nowcerts", "CertificateHolder.Delete", ncHolderID, "/Date(1709633730123+0400)/"); ev.IdempotencyKey != want {
			t.Errorf("key = %q, want %q", ev.IdempotencyKey, want)
		}
		if ev.Certificate != nil {
			t.Errorf("Certificate = %+v, want nil (none named)", ev.Certificate)
		}
	})
	t.Run("entity + one-letter operation, data as a JSON string, Unix time", func(t *testing.T) {
		ev := mustParse(t, SourceNowCerts, "nowcerts/extra_data_as_string.json")
		if ev.Type != "MasterCertificate.Update" || ev.EntityID != ncCertID {
			t.Errorf("type/id = %q/%q", ev.Type, ev.EntityID)
		}
		if want := time.Date(2024, 3, 5, 6, 15, 30, 0, time.UTC); !ev.OccurredAt.Equal(want) {
			t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
		}
		c := ev.Certificate
		if c == nil || c.Name != "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)" || c.InsuredID != ncInsuredID || c.Revision != "2024-03-05T06:15:29.877Z" {
			t.Errorf("certificate = %+v", c)
		}
		if ev.Insured == nil || ev.Insured.ID != ncInsuredID {
			t.Errorf("insured = %+v", ev.Insured)
		}
	})
	t.Run("event envelope object, holder with nested certificate and address", func(t *testing.T) {
		ev := mustParse(t, SourceNowCerts, "nowcerts/extra_holder_nested_certificate.json")
		if ev.Type != "CertificateHolder.Insert" || ev.EntityID != ncHolderID {
			t.Errorf("type/id = %q/%q (the envelope's id must not be taken)", ev.Type, ev.EntityID)
		}
		if want := time.Date(2024, 3, 5, 6, 15, 30, 5e8, time.UTC); !ev.OccurredAt.Equal(want) {
			t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
		}
		h := ev.Holders[0]
		if h.Address != "100 Main St, Springfield, IL 62701" || h.Email != "certs@acmebuilders.example" || h.ChangedAt != "2024-03-06T09:00:00+04:00" {
			t.Errorf("holder = %+v", h)
		}
		c := ev.Certificate
		if c == nil || c.ID != ncCertID || c.Revision != "2024-03-01T04:00:00Z" || !c.WaiverOfSubrogation || c.AdditionalInsured {
			t.Errorf("certificate = %+v (revision must be the certificate's change date, not the holder's)", c)
		}
	})
	t.Run("master certificate with holder list and pending approval", func(t *testing.T) {
		ev := mustParse(t, SourceNowCerts, "nowcerts/extra_master_with_holders.json")
		if ev.Type != "MasterCertificate.Update" || ev.EntityID != ncCertID {
			t.Errorf("type/id = %q/%q", ev.Type, ev.EntityID)
		}
		if len(ev.Holders) != 2 || ev.Holders[0].ID != ncHolderID || ev.Holders[0].Email != "certs@acmebuilders.example" ||
			ev.Holders[1].Name != "City of Springfield" || ev.Holders[1].Fax != "(217) 555-0199" {
			t.Errorf("holders = %+v", ev.Holders)
		}
		if c := ev.Certificate; c == nil || !c.PendingApproval || !strings.HasPrefix(c.Revision, "h:") {
			t.Errorf("certificate = %+v", c)
		}
	})
	t.Run("no timestamp anywhere: body hash in the key, zero OccurredAt", func(t *testing.T) {
		ev := mustParse(t, SourceNowCerts, "nowcerts/extra_no_timestamp.json")
		if !ev.OccurredAt.IsZero() {
			t.Errorf("OccurredAt = %v, want zero", ev.OccurredAt)
		}
		parts := strings.Split(ev.IdempotencyKey, "|")
		if len(parts) != 4 || parts[2] != ncHolderID || !strings.HasPrefix(parts[3], "h:") {
			t.Errorf("key = %q", ev.IdempotencyKey)
		}
		if ev.Certificate != nil {
			t.Errorf("Certificate = %+v, want nil", ev.Certificate)
		}
	})
}

func TestParseNowCertsUnknownShapes(t *testing.T) {
	cases := map[string]string{
		"insured_update.json":   `"Insured.Update" is not a MasterCertificate or CertificateHolder event`,
		"no_event_type.json":    "event type not found",
		"no_action.json":        "CertificateHolder event without an action",
		"no_entity_id.json":     "CertificateHolder.Insert event without an entity id",
		"nil_guid.json":         "MasterCertificate.Update event without an entity id",
		"ambiguous_action.json": "names more than one action",
		"array_of_two.json":     "array of 2 items",
		"string.json":           "is a string, want an object",
		"empty_object.json":     "event type not found",
	}
	for file, reason := range cases {
		t.Run(file, func(t *testing.T) {
			_, err := Parse(SourceNowCerts, readFixture(t, "nowcerts/unknown/"+file), received)
			if !errors.Is(err, ErrUnknownShape) {
				t.Fatalf("err = %v, want ErrUnknownShape", err)
			}
			if !strings.Contains(err.Error(), reason) {
				t.Errorf("err = %q, want it to say %q", err, reason)
			}
		})
	}
	// Every fixture in the directory is covered.
	files, _ := filepath.Glob("testdata/nowcerts/unknown/*.json")
	if len(files) != len(cases) {
		t.Errorf("%d fixtures in testdata/nowcerts/unknown, %d cases", len(files), len(cases))
	}
}

func TestParseNowCertsIdempotency(t *testing.T) {
	body := readFixture(t, "nowcerts/flat_pascal_holder_update.json")
	first, err := Parse(SourceNowCerts, body, received)
	if err != nil {
		t.Fatal(err)
	}

	// A redelivery of the same body, hours later, keeps the ID.
	again, err := Parse(SourceNowCerts, body, received.Add(3*time.Hour))
	if err != nil || again.ID != first.ID {
		t.Fatalf("redelivery: ID %q, want %q (err %v)", again.ID, first.ID, err)
	}

	// The same event re-serialised differently (key order, whitespace, the id in
	// upper case) is still the same event.
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["EntityId"] = strings.ToUpper(ncHolderID)
	compact, _ := json.Marshal(m)
	re, err := Parse(SourceNowCerts, compact, received)
	if err != nil || re.ID != first.ID {
		t.Errorf("re-serialised: ID %q, want %q (err %v)", re.ID, first.ID, err)
	}

	// A later change of the same holder (another timestamp) is a new event.
	later := bytes.Replace(body, []byte("2024-03-05T10:15:30.1234567+04:00"), []byte("2024-03-05T10:20:00+04:00"), 1)
	if bytes.Equal(later, body) {
		t.Fatal("fixture changed: timestamp not found")
	}
	next, err := Parse(SourceNowCerts, later, received)
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == first.ID {
		t.Error("different timestamp gave the same ID")
	}

	// Another action on the same entity at the same time is another event.
	del := bytes.Replace(body, []byte("CertificateHolder.Update"), []byte("CertificateHolder.Delete"), 1)
	other, err := Parse(SourceNowCerts, del, received)
	if err != nil || other.ID == first.ID {
		t.Errorf("delete vs update: IDs %q and %q (err %v)", other.ID, first.ID, err)
	}
}

func TestClassifyType(t *testing.T) {
	cases := []struct {
		in          string
		actionField bool
		kind        Kind
		action      Action
		other       bool
	}{
		{"MasterCertificate.Update", false, KindMasterCertificate, ActionUpdate, false},
		{"CertificateHolderInsert", false, KindCertificateHolder, ActionInsert, false},
		{"certificate_holder.inserted", false, KindCertificateHolder, ActionInsert, false},
		{"MASTERCERTIFICATE_UPDATE", false, KindMasterCertificate, ActionUpdate, false},
		{"CERTIFICATEHOLDERINSERT", false, KindCertificateHolder, ActionInsert, false},
		{"certificateholderremoved", false, KindCertificateHolder, ActionDelete, false},
		{"DeleteMasterCertificate", false, KindMasterCertificate, ActionDelete, false},
		{"Certificate Holder Created", false, KindCertificateHolder, ActionInsert, false},
		{"Holder.Added", false, KindCertificateHolder, ActionInsert, false},
		{"certificate.modified", false, KindMasterCertificate, ActionUpdate, false},
		{"MasterCertificateChanged", false, KindMasterCertificate, ActionUpdate, false},
		{"onCertificateHolderEdited", false, KindCertificateHolder, ActionUpdate, false},
		{"master-certificate:new", false, KindMasterCertificate, ActionInsert, false},
		{"Create", true, "", ActionInsert, false},
		{"Modify", true, "", ActionUpdate, false},
		{"Remove", true, "", ActionDelete, false},
		{"D", true, "", ActionDelete, false},
		{"D", false, "", "", true},
		{"CertificateHolder", false, KindCertificateHolder, "", false},
		{"HistoricalCertificateHolder", false, KindCertificateHolder, "", false},
		{"Insured.Update", false, "", ActionUpdate, true},
		{"Policy", false, "", "", true},
		{"AddressChanged", false, "", ActionUpdate, true},
		{"Address", false, "", "", true},
		{"webhook", false, "", "", false},
	}
	for _, c := range cases {
		k, a, other, err := classifyType(c.in, c.actionField)
		if err != nil {
			t.Errorf("classifyType(%q): %v", c.in, err)
			continue
		}
		if k != c.kind || a != c.action || (other != "") != c.other {
			t.Errorf("classifyType(%q, %v) = %q, %q, other %q; want %q, %q, other %v", c.in, c.actionField, k, a, other, c.kind, c.action, c.other)
		}
	}
	if _, _, _, err := classifyType("Insert or Update", true); !errors.Is(err, ErrUnknownShape) {
		t.Errorf("ambiguous action: err = %v", err)
	}
}

func TestParseTime(t *testing.T) {
	cases := map[string]string{
		"2023-10-19T19:27:17+04:00":          "2023-10-19T15:27:17Z",
		"2023-10-19T19:27:17.1234567+04:00":  "2023-10-19T15:27:17.1234567Z",
		"2023-10-19T15:27:17Z":               "2023-10-19T15:27:17Z",
		"2021-05-13T06:07:54.407+0000":       "2021-05-13T06:07:54.407Z",
		"2021-05-13T06:07:54+0000":           "2021-05-13T06:07:54Z",
		"2023-10-19T19:27:17.877":            "2023-10-19T19:27:17.877Z",
		"2023-10-19 19:27:17":                "2023-10-19T19:27:17Z",
		"2023-10-19":                         "2023-10-19T00:00:00Z",
		"Thu, 19 Oct 2023 19:27:17 GMT":      "2023-10-19T19:27:17Z",
		"/Date(1697743637000)/":              "2023-10-19T19:27:17Z",
		"/Date(1697743637000+0400)/":         "2023-10-19T19:27:17Z",
		"1697743637":                         "2023-10-19T19:27:17Z",
		"1697743637000":                      "2023-10-19T19:27:17Z",
		"10/19/2023 7:27:17 PM":              "2023-10-19T19:27:17Z",
		"  2023-10-19T19:27:17+04:00\t":      "2023-10-19T15:27:17Z",
		"2023-10-19T19:27:17.000000001-0330": "2023-10-19T22:57:17.000000001Z",
	}
	for in, want := range cases {
		got, ok := parseTime(in)
		if !ok || !got.Equal(mustTime(t, want)) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2023-13-45T00:00:00Z", "/Date(abc)/", "99999999999999999999", "0000-01-01T00:00:00+01:00"} {
		if got, ok := parseTime(bad); ok {
			t.Errorf("parseTime(%q) = %v, want failure", bad, got)
		}
	}
}
