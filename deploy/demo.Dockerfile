# sealprint DEMO AND TEST image, not for production: the compose demo's printer simulator
# (sealprint-printer-sim, a test double of a Zebra on raw TCP 9100) and its one-shots
# (sealprint-compose-demo: secrets, bootstrap, labels), both from the testkit crate (tests/).
# Built without pulling anything, like coordinator.Dockerfile. It has no entrypoint of its
# own: deploy/compose.yaml names the binary of each service.
FROM scratch
LABEL org.opencontainers.image.title="sealprint-demo" \
      org.opencontainers.image.description="TEST AND DEMO ONLY: printer simulator and compose one-shots" \
      io.sealprint.purpose="demo"
COPY rootfs/ /
# The hand-over volume (admin password, tenant ids, enrollment tokens) and the simulator's
# records, owned by the service user (a new named volume inherits this).
COPY --chown=10001:10001 handover/ /handover/
COPY --chown=10001:10001 records/ /records/
USER 10001:10001
WORKDIR /tmp
ENV SEALPRINT_LOG=info
EXPOSE 9100/tcp
STOPSIGNAL SIGTERM
