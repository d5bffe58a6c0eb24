#!/bin/bash
# Multi-node training without a scheduler: run this once on every node.
#
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 GPUS=4 bash scripts/torchrun.sh   # on the first node
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=1 GPUS=4 bash scripts/torchrun.sh   # on the second
#
# torchrun starts one process per GPU and sets the environment (RANK, LOCAL_RANK, WORLD_SIZE,
# MASTER_ADDR, MASTER_PORT) that Lightning reads; Lightning then launches nothing itself.
# Extra arguments go to `mmfuse fit`.
set -euo pipefail
: "${MASTER_ADDR:?set MASTER_ADDR to the address of the first node}"
: "${NNODES:=1}" "${NODE_RANK:=0}" "${GPUS:=1}" "${MASTER_PORT:=29500}"

torchrun \
  --nnodes "$NNODES" --nproc-per-node "$GPUS" --node-rank "$NODE_RANK" \
  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
  -m mmfuse fit \
  --config configs/quickstart.yaml \
  --config configs/trainer/ddp.yaml \
  --trainer.num_nodes "$NNODES" \
  --trainer.devices "$GPUS" \
  "$@"
