# sealprint coordinator image, built without pulling anything: the build context is a root
# filesystem that deploy/build-images.sh assembles (the binary, static or with the shared
# libraries it needs, /etc/passwd with the service user, CA certificates, an empty /data).
#   deploy/build-images.sh            # builds both images
FROM scratch
COPY rootfs/ /
# The only writable place, owned by the service user (a named volume inherits this).
COPY --chown=10001:10001 data/ /data/
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV SEALPRINT_LOG=info
# HTTPS API, libp2p mesh.
EXPOSE 8443/tcp 7000/tcp
# SIGTERM starts a drain of up to 30 s: stop with a longer grace (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sealprint-coordinator"]
CMD ["serve", "--config", "/etc/sealprint/coordinator.toml"]
