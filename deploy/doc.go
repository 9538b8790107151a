// Package deploy renders the load balancer's configuration and, in its
// tests, checks the container and cluster kit (Dockerfile,
// docker-compose.yml, deploy/nginx.conf, deploy/prometheus.yml, the
// Grafana dashboard and the k6 scripts) against bookhub's configuration.
//
// deploy/nginx.conf.tmpl is the one nginx configuration: RenderNginx turns
// it into deploy/nginx.conf for compose (ComposeNginx; `make nginx-conf`
// regenerates it and the tests fail while the two differ) and, in
// internal/cluster, into the config of a real nginx in front of local
// instances, which the fault and soak tests run. What a real nginx proves
// (upgrades, request ids, the 413 body, balancing, failover) is tested
// there; the checks here cover what only the compose rendering has, and
// what a short run cannot show, such as idle timeouts.
//
// CI has no Docker engine to start the compose cluster: a wrong variable
// name, a missing health check or a dashboard querying a metric that does
// not exist would otherwise only show up when someone runs `docker compose
// up`.
//
//	go test ./deploy/
package deploy
