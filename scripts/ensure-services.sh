#!/usr/bin/env bash
# Make sure the PostgreSQL and RabbitMQ the tests talk to are up on 127.0.0.1; start
# the local ones when they are down. Where neither is installed but a Docker engine
# answers, the test fixtures start testcontainers instead, so that is not an error.
set -euo pipefail

WAIT_SECONDS=${ZC_SERVICES_WAIT:-90}

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: error: $*" >&2; exit 1; }

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# wait_until <what> <command...>: retry the command once a second, up to WAIT_SECONDS.
wait_until() {
    local what=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${WAIT_SECONDS}s"
        sleep 1
    done
}

postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

rabbit_port_open() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' 2>/dev/null; }

rabbit_ready() {
    rabbit_port_open || return 1
    if command -v rabbitmqctl >/dev/null 2>&1; then
        timeout 30 rabbitmqctl --quiet await_startup >/dev/null 2>&1 || return 1
    fi
}

ensure_postgres() {
    if command -v pg_isready >/dev/null 2>&1 && postgres_ready; then
        say "PostgreSQL is up on 127.0.0.1:5432"
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
        docker_answers && { say "no local PostgreSQL; the tests will use a testcontainer"; return; }
        die "PostgreSQL is not running on 127.0.0.1:5432 and is not installed here (and no Docker engine answers)"
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_until "PostgreSQL on 127.0.0.1:5432" postgres_ready
    say "PostgreSQL is up on 127.0.0.1:5432"
}

ensure_rabbitmq() {
    if rabbit_ready; then
        say "RabbitMQ is up on 127.0.0.1:5672"
        return
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        docker_answers && { say "no local RabbitMQ; the tests will use a testcontainer"; return; }
        die "RabbitMQ is not running on 127.0.0.1:5672 and is not installed here (and no Docker engine answers)"
    fi
    if ! rabbit_port_open; then
        say "starting RabbitMQ"
        rabbitmq-server -detached || true
    fi
    wait_until "RabbitMQ on 127.0.0.1:5672" rabbit_ready
    say "RabbitMQ is up on 127.0.0.1:5672"
}

ensure_postgres
ensure_rabbitmq
