from common.http import serve
from product_svc.app import create_app
from product_svc.settings import Settings

serve(create_app, Settings)
