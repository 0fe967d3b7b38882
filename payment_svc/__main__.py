from common.http import serve
from payment_svc.app import create_app
from payment_svc.settings import Settings

serve(create_app, Settings)
