from common.http import serve
from notification_svc.app import create_app
from notification_svc.settings import Settings

serve(create_app, Settings)
