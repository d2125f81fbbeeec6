package services

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func startStack(t *testing.T, o Options) *Stack {
	t.Helper()
	o.Log = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	for _, tm := range st.Timings {
		t.Logf("%s ready in %s", tm.Service, tm.Ready)
	}
	t.Logf("stack ready in %s", st.Total)
	return st
}

func TestStackWithMoto(t *testing.T) {
	st := startStack(t, Options{})
	if st.SQSProvider != ProviderMoto {
		t.Skipf("moto_server is not installed here (%s)", st.Missing)
	}
	ctx := context.Background()
	cfg := st.AWSConfig()
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("DynamoDB ListTables: %v", err)
	}
	q, err := sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("services-test")})
	if err != nil {
		t.Fatalf("SQS CreateQueue: %v", err)
	}
	if !strings.Contains(aws.ToString(q.QueueUrl), "services-test") {
		t.Errorf("queue URL %q does not name the queue", aws.ToString(q.QueueUrl))
	}
	if _, err := secretsmanager.NewFromConfig(cfg).ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
		t.Fatalf("Secrets Manager ListSecrets: %v", err)
	}
	if err := st.RequireSecretsManager(); err != nil {
		t.Errorf("RequireSecretsManager with moto: %v", err)
	}
	assertLoopbackOnly(t, st.DynamoDBEndpoint, st.SQSEndpoint)
	assertStopped(t, st)
}

func TestStackFallbackWithoutMoto(t *testing.T) {
	st := startStack(t, Options{WithoutMoto: true})
	if st.SQSProvider != ProviderLocalSQS {
		t.Fatalf("SQS provider = %q, want %q", st.SQSProvider, ProviderLocalSQS)
	}
	if st.SecretsManagerEndpoint != "" {
		t.Errorf("Secrets Manager endpoint %q without moto", st.SecretsManagerEndpoint)
	}
	err := st.RequireSecretsManager()
	if err == nil || !strings.Contains(err.Error(), "moto_server") {
		t.Errorf("RequireSecretsManager = %v, want an error naming moto_server", err)
	}
	ctx := context.Background()
	c := sqs.NewFromConfig(st.AWSConfig())
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fallback-test")})
	if err != nil {
		t.Fatalf("SQS CreateQueue on local-aws-sqs: %v", err)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 1})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "hello" {
		t.Fatalf("received %+v, want one message \"hello\"", out.Messages)
	}
	assertLoopbackOnly(t, st.DynamoDBEndpoint, st.SQSEndpoint)
}

func TestEnvironNamesEveryEndpoint(t *testing.T) {
	st := &Stack{DynamoDBEndpoint: "http://127.0.0.1:1", SQSEndpoint: "http://127.0.0.1:2", SecretsManagerEndpoint: "http://127.0.0.1:2"}
	got := strings.Join(st.Environ(), "\n")
	for _, want := range []string{"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:1", "AWS_ENDPOINT_URL_SQS=http://127.0.0.1:2", "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:2"} {
		if !strings.Contains(got, want) {
			t.Errorf("Environ lacks %s:\n%s", want, got)
		}
	}
}

// assertLoopbackOnly reads the kernel's listening sockets and checks that
// each endpoint's port is bound to 127.0.0.1 (or its IPv4-mapped IPv6 form)
// and to nothing else.
func assertLoopbackOnly(t *testing.T, endpoints ...string) {
	t.Helper()
	for _, ep := range endpoints {
		port, err := strconv.Atoi(ep[strings.LastIndex(ep, ":")+1:])
		if err != nil {
			t.Fatalf("endpoint %q: %v", ep, err)
		}
		addrs := listeners(t, port)
		if len(addrs) == 0 {
			t.Errorf("nothing listens on port %d (%s)", port, ep)
		}
		for _, a := range addrs {
			if a != "0100007F" && a != "0000000000000000FFFF00000100007F" {
				t.Errorf("port %d is bound to address %s (hex, kernel order), not 127.0.0.1 only", port, a)
			}
		}
	}
}

func listeners(t *testing.T, port int) []string {
	t.Helper()
	want := fmt.Sprintf("%04X", port)
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A = LISTEN
				continue
			}
			host, p, ok := strings.Cut(fields[1], ":")
			if ok && p == want {
				out = append(out, host)
			}
		}
		fh.Close()
	}
	return out
}

func assertStopped(t *testing.T, st *Stack) {
	t.Helper()
	pids := make([]int, 0, len(st.procs))
	for _, p := range st.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	if err := st.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d still exists after Stop", pid)
		}
	}
	if _, err := os.Stat(st.StateDir); !os.IsNotExist(err) {
		t.Errorf("temporary state folder %s not removed: %v", st.StateDir, err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestFixedPortInUseIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{DynamoDBPort: port, WithoutMoto: true})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start on a busy fixed port = %v, want an error saying it is in use", err)
	}
}
