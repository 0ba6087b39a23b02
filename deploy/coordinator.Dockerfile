# sealprint coordinator image, built without pulling anything: the build context is a root
# filesystem that deploy/build-images.sh assembles (the binary, static or with the shared
# libraries it needs, /etc/passwd with the service user, CA certificates, an empty /data).
#   deploy/build-images.sh            # builds both images
FROM scratch
COPY rootfs/ /
# The writable places, owned by the service user (a named volume inherits this): the data
# directory, and /key for the master key file, which must lie outside it.
COPY --chown=10001:10001 data/ /data/
COPY --chown=10001:10001 data/ /key/
USER 10001:10001
WORKDIR /data
VOLUME ["/data", "/key"]
ENV SEALPRINT_LOG=info
# Healthcheck (no shell or curl in the image):
#   sealprint-coordinator healthcheck --ca-file /data/tls/cert.pem   (GET /healthz, 200 or exit 1)
# HTTPS API, libp2p mesh.
EXPOSE 8443/tcp 7000/tcp
# SIGTERM starts a drain of up to 30 s: stop with a longer grace (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sealprint-coordinator"]
CMD ["serve", "--config", "/etc/sealprint/coordinator.toml"]
