package wire

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/httpcrm"
	"github.com/coiflow/coiflow/internal/crm/hubspot"
	"github.com/coiflow/coiflow/internal/crm/hubspot/hubspotspec"
	"github.com/coiflow/coiflow/internal/crm/salesforce"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
)

func envOf(m map[string]string) Env { return func(k string) string { return m[k] } }

func TestNewCRMSelectsTheAdapterAndItsBaseURL(t *testing.T) {
	dir, err := hubspotspec.Dir()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := hubspotspec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	validated := spec.Wrap(crmsandbox.New(crmsandbox.Options{}), true)
	srv := httptest.NewServer(validated)
	defer srv.Close()
	base := srv.URL
	defer func() {
		for _, err := range validated.Errors() {
			t.Errorf("HubSpot spec violation: %v", err)
		}
	}()
	creds := crm.StaticCredentials(crm.Credentials{HubSpotToken: crmsandbox.DefaultToken})
	rec := crm.Record{ExternalID: "cowbell:a1", Fields: map[string]string{crm.FieldName: "Acme"}}
	// The specific override wins over CRM_BASE_URL; CRM_BASE_URL alone works too.
	for _, env := range []map[string]string{
		{"HUBSPOT_BASE_URL": base, "CRM_BASE_URL": "http://127.0.0.1:1"},
		{"CRM_BASE_URL": base},
	} {
		c, err := NewCRM(envOf(env), "hubspot", creds, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(*hubspot.Client); !ok {
			t.Fatalf("%T", c)
		}
		res, err := c.Upsert(context.Background(), crm.Company, []crm.Record{rec})
		if err != nil || res[0].Err != nil {
			t.Fatalf("%v: %v %+v", env, err, res)
		}
	}
	if c, err := NewCRM(envOf(nil), "salesforce", creds, nil); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(*salesforce.Client); !ok {
		t.Fatalf("%T", c)
	}
	if c, err := NewCRM(envOf(map[string]string{"CRM_BASE_URL": "http://127.0.0.1:9/upsert"}), "http", creds, nil); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(*httpcrm.Client); !ok {
		t.Fatalf("%T", c)
	}
	if _, err := NewCRM(envOf(nil), "http", creds, nil); err == nil || !strings.Contains(err.Error(), "CRM_UPSERT_URL") {
		t.Fatalf("http without URL: %v", err)
	}
	if _, err := NewCRM(envOf(nil), "pipedrive", creds, nil); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestCRMWorkerConfiguration(t *testing.T) {
	deps := func(env map[string]string) Deps {
		return Deps{Env: envOf(env), AWS: aws.Config{Region: "us-east-1"}, Stdout: io.Discard}
	}
	h, err := CRMWorker(context.Background(), deps(map[string]string{"CRM_KIND": "none"}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Invoke(context.Background(), []byte(`{"Records":[{"messageId":"m1","body":"{}"}]}`))
	if err != nil || strings.Contains(string(out), "m1") {
		t.Fatalf("CRM_KIND=none must acknowledge: %s %v", out, err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CRM_SECRET_ARN": "arn:x"}, "TABLE_NAME"},
		{map[string]string{"TABLE_NAME": "t"}, "CRM_SECRET_ARN"},
		{map[string]string{"TABLE_NAME": "t", "CRM_SECRET_ARN": "arn:x", "CRM_KIND": "nope"}, "CRM_KIND"},
	} {
		if _, err := CRMWorker(context.Background(), deps(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %s", c.env, err, c.want)
		}
	}
	if h, err := CRMWorker(context.Background(), deps(map[string]string{"TABLE_NAME": "t", "CRM_SECRET_ARN": "arn:x"})); err != nil || h == nil {
		t.Fatalf("default kind: %v", err)
	}
}
