package wire

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/store"
)

// TokenRefresher builds the scheduled function that keeps the NowCerts token in
// Secrets Manager fresh (NOWCERTS_SECRET_ARN, NOWCERTS_BASE_URL, TABLE_NAME).
func TokenRefresher(ctx context.Context, d Deps) (lambda.Handler, error) {
	log := obs.NewLogger(d.Stdout, d.Env("LOG_LEVEL")).With("function", "token-refresher")
	_, tokens, err := NowCerts(d, log, obs.NewMetrics(d.Stdout))
	if err != nil {
		return nil, err
	}
	r := nowcerts.Refresher{Tokens: tokens, Window: nowcerts.DefaultRefreshWindow, Logger: log}
	return lambda.NewHandler(r.Handle), nil
}

// NowCerts builds the NowCerts client and its token source from configuration:
// the token lives in the secret NOWCERTS_SECRET_ARN, refreshes are serialised
// by a lease in TABLE_NAME, the API is at NOWCERTS_BASE_URL (default
// https://api.nowcerts.com). Every function that calls NowCerts uses it.
func NowCerts(d Deps, log *slog.Logger, m *obs.Metrics) (*nowcerts.Client, *nowcerts.TokenSource, error) {
	arn, err := d.Env.Require("NOWCERTS_SECRET_ARN")
	if err != nil {
		return nil, nil, err
	}
	table, err := d.Env.Require("TABLE_NAME")
	if err != nil {
		return nil, nil, err
	}
	cfg := nowcerts.Config{
		BaseURL: d.Env.Or("NOWCERTS_BASE_URL", nowcerts.DefaultBaseURL),
		Metrics: m,
		Logger:  log,
	}
	st := store.New(dynamodb.NewFromConfig(d.AWS), table)
	tokens, err := nowcerts.NewTokenSource(cfg, nowcerts.TokenConfig{
		Secrets:  nowcerts.SecretsManager{API: secretsmanager.NewFromConfig(d.AWS)},
		SecretID: arn,
		Lease:    st,
		LeaseTTL: 30 * time.Second,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("nowcerts: %w", err)
	}
	client, err := nowcerts.NewClient(cfg, tokens)
	if err != nil {
		return nil, nil, fmt.Errorf("nowcerts: %w", err)
	}
	return client, tokens, nil
}
