# sealprint Print Station agent image, built without pulling anything: the build context is a
# root filesystem that deploy/build-images.sh assembles (see coordinator.Dockerfile).
FROM scratch
COPY rootfs/ /
# The only writable place, owned by the service user (a named volume inherits this).
COPY --chown=10001:10001 data/ /data/
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV SEALPRINT_LOG=info
# Healthcheck (no shell in the image): sealprint-agent status --data-dir /data (exit 1 unless
# an agent is running). In containers, `run --enroll-token-file FILE` enrolls on first start.
# Site mesh (libp2p); mDNS uses 5353/udp multicast.
EXPOSE 7001/tcp 5353/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sealprint-agent"]
CMD ["run", "--data-dir", "/data", "--config", "/etc/sealprint/agent.toml"]
