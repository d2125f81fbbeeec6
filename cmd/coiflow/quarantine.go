package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/opstarget"
	"github.com/coiflow/coiflow/internal/queue"
	"github.com/coiflow/coiflow/internal/replay"
	"github.com/coiflow/coiflow/internal/secrets"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/webhook"
)

const quarantineSynopsis = "quarantine list [flags] | quarantine replay [flags] ID"

func cmdQuarantine(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stderr, "usage: coiflow %s\n\n"+
			"  list     the quarantined webhook bodies, newest first, and whether each parses now\n"+
			"  replay   parse a quarantined body again and, if it parses now, enqueue its event as the webhook would\n\n"+
			"Run `coiflow quarantine list -h` or `coiflow quarantine replay -h` for flags.\n", quarantineSynopsis)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "list":
		return cmdQuarantineList(ctx, args[1:], stdout, stderr)
	case "replay":
		return cmdQuarantineReplay(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "coiflow quarantine: unknown subcommand %q; usage: coiflow %s\n", args[0], quarantineSynopsis)
	return exitUsage
}

func cmdQuarantineList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("quarantine list", "quarantine list [--limit N] [--json] [--aws | --state FILE] [--table NAME]", stderr)
	limit := fs.Int("limit", 50, "show the newest N records")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	table := fs.String("table", "", "the DynamoDB table (default: TABLE_NAME of the target)")
	tf := addTargetFlags(fs)
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	t, err := tf.open(ctx, false)
	if err != nil {
		return fail(stderr, "quarantine list", err)
	}
	t.Set(opstarget.EnvTable, *table)
	name, err := t.Require(opstarget.EnvTable)
	if err != nil {
		return fail(stderr, "quarantine list", err)
	}
	entries, err := replay.List(ctx, store.New(dynamodb.NewFromConfig(t.AWS), name), *limit)
	if err != nil {
		return fail(stderr, "quarantine list", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(entries)
	} else {
		err = replay.WriteList(stdout, entries)
	}
	if err != nil {
		return fail(stderr, "quarantine list", err)
	}
	return exitOK
}

func cmdQuarantineReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("quarantine replay", "quarantine replay [--dry-run] [--force] [--by NAME] [--aws | --state FILE] ID", stderr)
	dryRun := fs.Bool("dry-run", false, "parse and route the body; enqueue nothing, mark nothing")
	force := fs.Bool("force", false, "replay a record that was replayed before")
	by := fs.String("by", opstarget.Operator(), "who replays (recorded on the record)")
	table := fs.String("table", "", "the DynamoDB table (default: TABLE_NAME of the target)")
	crmURL := fs.String("crm-queue-url", "", "the crm-jobs queue (default: CRM_QUEUE_URL of the target)")
	sendURL := fs.String("send-queue-url", "", "the send-jobs queue (default: SEND_QUEUE_URL of the target)")
	secretARN := fs.String("webhook-secret-arn", "", "the webhook secret whose agency allowlists a replay must pass (default: WEBHOOK_SECRET_ARN of the target)")
	tf := addTargetFlags(fs)
	if code, stop := parse(fs, args); stop {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "coiflow quarantine replay: want one quarantine ID (see coiflow quarantine list)")
		fs.Usage()
		return exitUsage
	}
	id := fs.Arg(0)
	const cmd = "quarantine replay"
	t, err := tf.open(ctx, false)
	if err != nil {
		return fail(stderr, cmd, err)
	}
	for k, v := range map[string]string{opstarget.EnvTable: *table, opstarget.EnvCRMQueue: *crmURL, opstarget.EnvSendQueue: *sendURL, opstarget.EnvWebhookSecret: *secretARN} {
		t.Set(k, v)
	}
	cfg := map[string]string{}
	for _, k := range []string{opstarget.EnvTable, opstarget.EnvCRMQueue, opstarget.EnvSendQueue} {
		if cfg[k], err = t.Require(k); err != nil {
			return fail(stderr, cmd, err)
		}
	}
	// The same publisher, to the same queues, as the webhook receiver.
	pub, err := queue.NewPublisher(queue.New(sqs.NewFromConfig(t.AWS)), map[jobs.Queue]string{
		jobs.QueueCRM:  cfg[opstarget.EnvCRMQueue],
		jobs.QueueSend: cfg[opstarget.EnvSendQueue],
	})
	if err != nil {
		return fail(stderr, cmd, err)
	}
	rc := replay.Config{Store: store.New(dynamodb.NewFromConfig(t.AWS), cfg[opstarget.EnvTable]), Queue: pub, By: *by}
	if arn := t.Get(opstarget.EnvWebhookSecret); arn != "" {
		rc.Credentials = webhook.NewSecretCredentials(secrets.NewCache(secretsmanager.NewFromConfig(t.AWS), time.Minute), arn)
	} else {
		fmt.Fprintln(stderr, "coiflow quarantine replay: WEBHOOK_SECRET_ARN unknown: the agencies' allowlist is not checked")
	}
	r, err := replay.New(rc)
	if err != nil {
		return fail(stderr, cmd, err)
	}
	res, err := r.Replay(ctx, id, replay.Options{DryRun: *dryRun, Force: *force})
	if err != nil {
		if errors.Is(err, replay.ErrUnreadable) {
			fmt.Fprintf(stderr, "coiflow %s: %v\n  the record is left as it is (received %s from %s)\n", cmd, err,
				res.Record.ReceivedAt.UTC().Format(time.RFC3339), res.Record.Source)
			return exitFail
		}
		return fail(stderr, cmd, err)
	}
	ids := make([]string, len(res.Jobs))
	for i, j := range res.Jobs {
		ids[i] = j.ID
	}
	queued := "routes to no queue: nothing to enqueue"
	if len(ids) > 0 {
		queued = "jobs " + strings.Join(ids, ", ")
	}
	if res.DryRun {
		fmt.Fprintf(stdout, "dry run: quarantine %s parses now as event %s (%s %s %s); would enqueue %s\n",
			id, res.Event.ID, res.Event.Type, res.Event.EntityKind, res.Event.EntityID, queued)
		return exitOK
	}
	fmt.Fprintf(stdout, "replayed quarantine %s as event %s (%s %s %s): %s; marked replayed by %s\n",
		id, res.Event.ID, res.Event.Type, res.Event.EntityKind, res.Event.EntityID, queued, *by)
	return exitOK
}
