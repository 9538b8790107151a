// Package deploy has no code of its own. Its tests check the container and
// cluster kit (Dockerfile, docker-compose.yml, deploy/nginx.conf,
// deploy/prometheus.yml, the Grafana dashboard and the k6 scripts) against
// bookhub's configuration, because CI has no Docker engine to start the
// cluster: a wrong variable name, a missing health check or a dashboard
// querying a metric that does not exist would otherwise only show up when
// someone runs `docker compose up`.
//
//	go test ./deploy/
package deploy
