// Package opstarget says where coiflow's operator commands (redrive,
// quarantine) act: the local stack a running `coiflow run` described in its
// local.json, or an AWS deployment reached through the SDK's default
// credential chain and configured by the same environment variables the
// functions read (TABLE_NAME, CRM_QUEUE_URL, SEND_QUEUE_URL,
// WEBHOOK_SECRET_ARN).
package opstarget

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/run"
	"github.com/coiflow/coiflow/internal/local/services"
)

// Configuration keys (environment variable names, as in template.yaml).
const (
	EnvTable         = "TABLE_NAME"
	EnvCRMQueue      = "CRM_QUEUE_URL"
	EnvSendQueue     = "SEND_QUEUE_URL"
	EnvWebhookSecret = "WEBHOOK_SECRET_ARN"
)

// Target kinds.
const (
	KindLocal = "local"
	KindAWS   = "aws"
)

// Target is where a command acts.
type Target struct {
	// Kind is KindLocal or KindAWS.
	Kind string
	// Where describes the target for messages (the local.json path, or the
	// AWS region).
	Where string
	// AWS is the SDK configuration for the target's services.
	AWS aws.Config
	// env is the configuration by key.
	env map[string]string
	// queues are work queue URLs by template logical id.
	queues map[string]string
}

// Local returns the target of the system whose local.json is at path.
func Local(path string) (*Target, error) {
	info, err := run.ReadInfo(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: is `coiflow run` (make run) running? (or pass --state, or --aws)", path)
	}
	if err != nil {
		return nil, err
	}
	t := &Target{
		Kind:  KindLocal,
		Where: path,
		AWS: services.Config(map[string]string{
			dynamodb.ServiceID: info.Endpoints.DynamoDB, sqs.ServiceID: info.Endpoints.SQS, secretsmanager.ServiceID: info.Endpoints.SecretsManager,
		}),
		env:    map[string]string{},
		queues: map[string]string{},
	}
	// The webhook's own configuration names the table, queues and secret.
	for _, k := range []string{EnvTable, EnvCRMQueue, EnvSendQueue, EnvWebhookSecret} {
		t.env[k] = info.Functions["webhook"].Env[k]
	}
	if t.env[EnvTable] == "" {
		t.env[EnvTable] = info.Table
	}
	for id, q := range info.Queues {
		t.queues[id] = q.URL
	}
	for _, wq := range WorkQueues() {
		if t.env[wq.EnvVar] == "" {
			t.env[wq.EnvVar] = t.queues[wq.LogicalID]
		}
		if t.queues[wq.LogicalID] == "" {
			t.queues[wq.LogicalID] = t.env[wq.EnvVar]
		}
	}
	return t, nil
}

// AWS returns the target of a deployment: the default credential chain
// (environment, shared config and profile, SSO, instance role), configured by
// getenv.
func AWS(ctx context.Context, getenv func(string) string) (*Target, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws configuration: no region (set AWS_REGION or a profile's region)")
	}
	t := &Target{Kind: KindAWS, Where: "AWS " + cfg.Region, AWS: cfg, env: map[string]string{}, queues: map[string]string{}}
	for _, k := range []string{EnvTable, EnvCRMQueue, EnvSendQueue, EnvWebhookSecret} {
		t.env[k] = getenv(k)
	}
	for _, wq := range WorkQueues() {
		t.queues[wq.LogicalID] = t.env[wq.EnvVar]
	}
	return t, nil
}

// Get returns the configuration value of key ("" when unset).
func (t *Target) Get(key string) string { return t.env[key] }

// Set overrides the configuration value of key (a command-line flag); an
// empty value leaves it as it is.
func (t *Target) Set(key, value string) {
	if value == "" {
		return
	}
	t.env[key] = value
	for _, wq := range WorkQueues() {
		if wq.EnvVar == key {
			t.queues[wq.LogicalID] = value
		}
	}
}

// Require returns the value of key, or an error naming it.
func (t *Target) Require(key string) (string, error) {
	if v := t.env[key]; v != "" {
		return v, nil
	}
	if t.Kind == KindLocal {
		return "", fmt.Errorf("%s does not name %s (is it a current coiflow run's?)", t.Where, key)
	}
	return "", fmt.Errorf("%s is not set: export it (the value of the deployed stack's output or function environment) or pass it as a flag", key)
}

// WorkQueue is one of coiflow's work queues and the names an operator may use
// for it.
type WorkQueue struct {
	Name         jobs.Queue // "crm-jobs"
	LogicalID    string     // template.yaml's queue, "CrmJobsQueue"
	DLQLogicalID string     // its DLQ, "CrmJobsDLQ"
	EnvVar       string     // the functions' configuration key, "CRM_QUEUE_URL"
}

// WorkQueues returns coiflow's work queues (template.yaml's, checked by a test).
func WorkQueues() []WorkQueue {
	return []WorkQueue{
		{Name: jobs.QueueCRM, LogicalID: "CrmJobsQueue", DLQLogicalID: "CrmJobsDLQ", EnvVar: EnvCRMQueue},
		{Name: jobs.QueueSend, LogicalID: "SendJobsQueue", DLQLogicalID: "SendJobsDLQ", EnvVar: EnvSendQueue},
	}
}

// IsURL reports whether name is a queue URL rather than a name.
func IsURL(name string) bool {
	return strings.HasPrefix(name, "https://") || strings.HasPrefix(name, "http://")
}

// QueueURL returns the URL of the queue name: a URL as it is; a work queue by
// its name (crm-jobs), its DLQ's name (crm-jobs-dlq) or either's template
// logical id (CrmJobsQueue, CrmJobsDLQ) as the work queue's URL (a DLQ is
// found from its source's RedrivePolicy); locally also any queue logical id
// of local.json.
func (t *Target) QueueURL(name string) (string, error) {
	if IsURL(name) {
		return name, nil
	}
	for _, wq := range WorkQueues() {
		for _, alias := range []string{string(wq.Name), string(wq.Name) + "-dlq", wq.LogicalID, wq.DLQLogicalID} {
			if strings.EqualFold(name, alias) {
				return t.Require(wq.EnvVar)
			}
		}
	}
	for id, url := range t.queues {
		if strings.EqualFold(name, id) && url != "" {
			return url, nil
		}
	}
	var names []string
	for _, wq := range WorkQueues() {
		names = append(names, string(wq.Name), wq.LogicalID, wq.DLQLogicalID)
	}
	return "", fmt.Errorf("unknown queue %q: use a queue URL or one of %s", name, strings.Join(names, ", "))
}

// SourceQueueURLs returns the URLs of the work queues the target knows, sorted.
func (t *Target) SourceQueueURLs() []string {
	var urls []string
	for _, u := range t.queues {
		if u != "" {
			urls = append(urls, u)
		}
	}
	sort.Strings(urls)
	return urls
}

// IsAWSURL reports whether u is a queue URL of AWS SQS (rather than a local
// stand-in's).
func IsAWSURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		return false
	}
	host, _, _ := strings.Cut(rest, "/")
	return strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")
}

// Operator names who runs a command, for records that say who did what:
// $USER (or the account's name) @ the host name.
func Operator() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		name += "@" + host
	}
	return name
}
