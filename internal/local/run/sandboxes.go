package run

import (
	"fmt"

	"github.com/coiflow/coiflow/internal/local/provision"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/sandbox/nowcertssandbox"
)

// startSandboxes starts the NowCerts and CRM sandboxes unless configuration
// points the system elsewhere, and returns the template parameters that wire
// the functions to them (plus LOG_LEVEL).
func (s *System) startSandboxes(o Options) (map[string]string, error) {
	params := map[string]string{}
	if v := o.Getenv("LOG_LEVEL"); v != "" {
		params["LogLevel"] = v
	}

	if v := o.Getenv("NOWCERTS_BASE_URL"); v != "" {
		params["NowCertsBaseUrl"] = v
		s.Info.Notes = append(s.Info.Notes, "NowCerts: NOWCERTS_BASE_URL is set, the NowCerts sandbox is not started ("+v+")")
	} else {
		user, pass := o.Getenv("NOWCERTS_USERNAME"), o.Getenv("NOWCERTS_PASSWORD")
		if user == "" || pass == "" {
			user, pass = provision.SandboxNowCertsUsername, provision.SandboxNowCertsPassword
		}
		sb := nowcertssandbox.New(nowcertssandbox.Options{Username: user, Password: pass})
		url, stop, err := sb.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("run: start the NowCerts sandbox: %w", err)
		}
		s.sandboxes = append(s.sandboxes, stop)
		s.NowCerts = sb
		s.Info.Sandboxes["nowcerts"] = url
		params["NowCertsBaseUrl"] = url
	}

	if v := o.Getenv("CRM_BASE_URL"); v != "" {
		params["CrmBaseUrl"] = v
		if k := o.Getenv("CRM_KIND"); k != "" {
			params["CrmKind"] = k
		}
		s.Info.Notes = append(s.Info.Notes, "CRM: CRM_BASE_URL is set, the CRM sandbox is not started ("+v+")")
	} else {
		sb := crmsandbox.New(crmsandbox.Options{})
		url, stop, err := crmsandbox.StartSandbox("127.0.0.1:0", sb)
		if err != nil {
			return nil, fmt.Errorf("run: start the CRM sandbox: %w", err)
		}
		s.sandboxes = append(s.sandboxes, stop)
		s.CRM = sb
		s.Info.Sandboxes["crm"] = url
		params["CrmBaseUrl"] = url
		params["CrmKind"] = "hubspot"
	}
	return params, nil
}
