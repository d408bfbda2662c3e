#!/usr/bin/env sh
# Writes .env beside docker-compose.yml with a fresh credential for each service that
# calls the api (ingestor, notifier, reaper): compose hands each service its own and the
# api all three. Run once; an existing .env is kept (its credentials are in use).
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
    echo ".env exists: keeping its credentials (delete it to make new ones)"
    exit 0
fi
umask 077
{
    echo "# Made by scripts/compose-credentials.sh: each ZeroCloud service's own credential."
    for service in INGESTOR NOTIFIER REAPER; do
        echo "ZC_${service}_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    done
} > .env
echo "wrote .env with new credentials for the ingestor, notifier and reaper"
