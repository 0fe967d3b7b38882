# One image for every service; compose.yaml picks the service with its command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml ./
COPY common ./common
COPY schemas ./schemas
COPY stack ./stack
COPY product_svc ./product_svc
COPY order_svc ./order_svc
COPY user_svc ./user_svc
COPY payment_svc ./payment_svc
COPY notification_svc ./notification_svc
COPY inventory_svc ./inventory_svc
COPY gateway_svc ./gateway_svc
RUN pip install --no-cache-dir . && useradd --system shop
USER shop
ENV HTTP_HOST=0.0.0.0
CMD ["python", "-m", "gateway_svc"]
