package wire

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/httpcrm"
	"github.com/coiflow/coiflow/internal/crm/hubspot"
	"github.com/coiflow/coiflow/internal/crm/salesforce"
	"github.com/coiflow/coiflow/internal/crmsync"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/store"
)

// CRMWorker builds the crm-jobs consumer: TABLE_NAME (CRM state, note claims,
// failures), CRM_KIND (hubspot | salesforce | http | none; default hubspot),
// CRM_SECRET_ARN (credentials JSON), and the base URL: HUBSPOT_BASE_URL,
// SALESFORCE_BASE_URL or CRM_UPSERT_URL for the selected kind, else
// CRM_BASE_URL (what template.yaml passes), else the CRM's own default.
// CRM_KIND=none acknowledges every job without writing anything.
func CRMWorker(ctx context.Context, d Deps) (lambda.Handler, error) {
	log := obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")).With("function", "crm-worker")
	kind := d.Env.Or("CRM_KIND", "hubspot")
	if kind == "none" {
		log.Info("CRM sync disabled (CRM_KIND=none): jobs are acknowledged without effect")
		return lambda.NewHandler(func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			log.InfoContext(ctx, "crm jobs dropped: CRM sync disabled", "count", len(ev.Records))
			return events.SQSEventResponse{}, nil
		}), nil
	}
	metrics := obs.NewMetrics(d.Stdout)
	table, err := d.Env.Require("TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("crm-worker: %w", err)
	}
	arn, err := d.Env.Require("CRM_SECRET_ARN")
	if err != nil {
		return nil, fmt.Errorf("crm-worker: %w", err)
	}
	cache := secrets.NewCache(secretsmanager.NewFromConfig(d.AWS), 5*time.Minute)
	creds := func(ctx context.Context, refresh bool) (crm.Credentials, error) {
		if refresh {
			cache.Invalidate(arn)
		}
		var c crm.Credentials
		if err := cache.JSON(ctx, arn, &c); err != nil {
			return crm.Credentials{}, err
		}
		return c, nil
	}
	client, err := NewCRM(d.Env, kind, creds, log)
	if err != nil {
		return nil, fmt.Errorf("crm-worker: %w", err)
	}
	w, err := crmsync.New(crmsync.Config{
		CRM: client, Kind: kind, Store: store.New(dynamodb.NewFromConfig(d.AWS), table),
		Logger: log, Metrics: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("crm-worker: %w", err)
	}
	log.Info("crm worker ready", "crmKind", kind)
	return lambda.NewHandler(w.Handle), nil
}

// NewCRM builds the CRM adapter of kind from the environment's base URLs.
func NewCRM(env Env, kind string, creds crm.CredentialsSource, log *slog.Logger) (crm.CRM, error) {
	hc := &http.Client{Timeout: 20 * time.Second}
	switch kind {
	case "hubspot":
		return hubspot.New(hubspot.Config{
			BaseURL:     env.Or("HUBSPOT_BASE_URL", env.Or("CRM_BASE_URL", hubspot.DefaultBaseURL)),
			Credentials: creds, HTTPClient: hc, Logger: log,
		})
	case "salesforce":
		return salesforce.New(salesforce.Config{
			BaseURL:     env.Or("SALESFORCE_BASE_URL", env("CRM_BASE_URL")),
			Credentials: creds, HTTPClient: hc, Logger: log,
		})
	case "http":
		u := env.Or("CRM_UPSERT_URL", env("CRM_BASE_URL"))
		if u == "" {
			return nil, fmt.Errorf("CRM_KIND=http needs CRM_UPSERT_URL (or CRM_BASE_URL)")
		}
		return httpcrm.New(httpcrm.Config{URL: u, Credentials: creds, HTTPClient: hc})
	}
	return nil, fmt.Errorf("CRM_KIND %q: want hubspot, salesforce, http or none", kind)
}
