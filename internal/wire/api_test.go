package wire

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestAPIFailsClosedOnStaffAuth(t *testing.T) {
	base := map[string]string{
		"TABLE_NAME":          "coiflow",
		"CRM_QUEUE_URL":       "http://127.0.0.1:1/000000000000/crm-jobs",
		"NOWCERTS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:nowcerts",
	}
	deps := func(extra map[string]string) Deps {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return Deps{Env: func(k string) string { return env[k] }, AWS: aws.Config{Region: "us-east-1"}, Stdout: io.Discard}
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "STAFF_AUTH is not set"},
		{map[string]string{"STAFF_AUTH": "none"}, `unknown STAFF_AUTH "none"`},
		{map[string]string{"STAFF_AUTH": "token"}, "STAFF_SECRET_ARN"},
	} {
		h, err := API(context.Background(), deps(c.env))
		if err == nil || h != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("STAFF_AUTH=%q: got %v, %v; want an error mentioning %q", c.env["STAFF_AUTH"], h, err, c.want)
		}
	}
	for _, env := range []map[string]string{
		{"STAFF_AUTH": "jwt"},
		{"STAFF_AUTH": "token", "STAFF_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:staff"},
	} {
		if h, err := API(context.Background(), deps(env)); err != nil || h == nil {
			t.Errorf("%v: %v", env, err)
		}
	}
	if _, err := API(context.Background(), deps(map[string]string{"STAFF_AUTH": "jwt", "TABLE_NAME": ""})); err == nil ||
		!strings.Contains(err.Error(), "TABLE_NAME") {
		t.Errorf("missing TABLE_NAME: %v", err)
	}
}
