"""payment_svc: payment methods, payments and their gateway transactions; emits payments.events."""
