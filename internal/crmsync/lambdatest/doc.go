// Package lambdatest holds the crm-worker function's end-to-end test: the
// handler built by internal/wire from its environment, over DynamoDB Local,
// moto's Secrets Manager and the CRM sandbox. It is a package of its own so
// that crmsync's tests do not depend on every package wire links.
package lambdatest
